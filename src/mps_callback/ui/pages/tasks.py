"""``/ui/``: the tasks, newest first, filtered from the URL, counted per status, live.

The filters are query parameters of a GET form, so a view is a link to share. They are checked
with the query API's own types (``api/params.py``: status spellings, UTC instants, lengths) and
its SQL (``api/tasks.py`` ``task_conditions`` and ``task_page``); a value they refuse answers a
4xx page saying why, never a 500.

Built for a million tasks (migration 0009 gives every filter an index in list order):

- the list is one keyset page (``cursor``), a range scan of the filter's index;
- the per-status counts are bounded: each counts at most :data:`COUNT_CAP` + 1 rows and shows
  "1,000+" beyond, rather than reading every matching task on each poll;
- the text search has two modes. ``exact`` (the default) finds a TaskId or SessionId through
  their indexes at any table size. ``contains`` looks for the text anywhere in TaskId, SessionId,
  SessionContext or input, which no B-tree index can serve: it walks the tasks newest first and
  stops at the page's last match, or after :data:`SCAN_CAP` tasks (the other filters applied),
  whichever comes first; the next page then searches further back. A page costs at most that
  many rows however rare the text; it shows no counts (those would read every task);
- the live view polls (``static/tasks.js``, every 5 s while the tab is visible) with what it has
  seen (the newest ``last_received_at`` and ``projected_at``): two index lookups, and 204 (nothing
  to swap) while they are the same;
- the type filter reads file tasks (by EventType) and live tasks (by the NotificationTypes they
  received) apart, each through its own index in list order, and merges the two short lists
  (``api.tasks.type_parts``, ``newest_first``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from mps_callback.api.cursor import MAX_CURSOR_CHARS
from mps_callback.api.deps import EngineDep
from mps_callback.api.params import StatusFilter, UtcInstant
from mps_callback.api.schemas import TaskPage
from mps_callback.api.tasks import (
    FAILED,
    SCAN_CAP,
    Parts,
    is_common_type,
    searched_page,
    task_conditions,
    text_condition,
    type_parts,
)
from mps_callback.api.tasks import window_end_select as api_window_end_select
from mps_callback.store.tables import notifications, subtasks, tasks
from mps_callback.ui.web import render

router = APIRouter()

#: A status count stops here: the chip then says "1,000+".
COUNT_CAP = 1_000
#: How often the open page asks whether anything changed (static/tasks.js reads it from the page).
POLL_MS = 5_000
#: The status chips, in order: the filter value and what each counts.
STATUSES: dict[str, sa.ColumnElement[bool]] = {
    "PROCESSING": tasks.c.status == "PROCESSING",
    "FINISH": tasks.c.status == "FINISH",
    "failed": FAILED,
}
#: A subtask failed: FAIL, or SUCCESS carrying an error (``project.model.subtask_failed``, in SQL).
SUBTASK_FAILED = sa.or_(
    subtasks.c.status == "FAIL",
    sa.and_(
        subtasks.c.status == "SUCCESS",
        sa.or_(
            sa.func.coalesce(subtasks.c.err_code, 0) != 0,
            sa.func.coalesce(subtasks.c.err_code_ext, "").not_in(["", "SUCCESS"]),
        ),
    ),
)
#: The query parameters the page reads; anything else in the URL is ignored.
FILTER_NAMES = ("status", "kind", "type", "since", "until", "q", "match", "limit", "cursor")


class TaskFilters(BaseModel):
    """The page's query parameters, with the query API's types and limits."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    status: StatusFilter | None = None
    kind: Literal["vod", "live"] | None = None
    type: Annotated[str | None, Field(max_length=128)] = None
    since: UtcInstant | None = None
    until: UtcInstant | None = None
    q: Annotated[str | None, Field(max_length=200)] = None
    match: Literal["exact", "contains"] = "exact"
    limit: Annotated[int, Field(ge=1, le=500)] = 50
    cursor: Annotated[str | None, Field(max_length=MAX_CURSOR_CHARS)] = None
    #: Set by the page from a count (``api.tasks.is_common_type``), never from the URL: not in FILTER_NAMES.
    common_type: bool = False

    @property
    def contains(self) -> bool:
        """A substring search: no index serves it (see the module's doc)."""
        return bool(self.q) and self.match == "contains"

    def conditions(self, *, with_status: bool = True, with_text: bool = True) -> list[sa.ColumnElement[bool]]:
        """The SQL terms of these filters (the API's) but the type (:attr:`parts`); the text as :attr:`match` says."""
        found = task_conditions(
            status=self.status if with_status else None, kind=self.kind, since=self.since, until=self.until
        )
        text = text_condition(self.q, self.match) if with_text else None
        return [*found, *([text] if text is not None else [])]

    @property
    def parts(self) -> Parts:
        """The type filter's disjoint parts (``api.tasks.type_parts``), each read through its own index."""
        return type_parts(self.type, self.common_type)

    def form(self) -> dict[str, str]:
        """The form fields' text for these filters."""
        return dict(parse_qsl(self.query(match=self.match)))

    def query(self, **changes: str | None) -> str:
        """These filters as a query string, with ``changes`` (None drops one); no cursor unless given."""
        values: dict[str, str | None] = {
            "status": self.status,
            "kind": self.kind,
            "type": self.type,
            "since": _form_time(self.since),
            "until": _form_time(self.until),
            "q": self.q,
            "match": self.match if self.q else None,
            "limit": str(self.limit) if self.limit != 50 else None,
        }
        values.update(changes)
        return urlencode({name: value for name, value in values.items() if value})


@dataclass(frozen=True, slots=True)
class StatusCount:
    """One chip: the status, how many tasks (capped), and the link that filters by it."""

    status: str
    count: int | None  # None: not counted (a substring search)
    href: str

    @property
    def label(self) -> str:
        if self.count is None:
            return "\u2013"  # an en dash: not counted
        return f"{COUNT_CAP:,}+" if self.count > COUNT_CAP else f"{self.count:,}"


class BadFilter(Exception):
    """A query parameter the page refuses: the 4xx status and the reasons."""

    def __init__(self, status_code: int, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.status_code = status_code
        self.reasons = reasons


@router.get("/", response_class=HTMLResponse)
async def tasks_page(request: Request, engine: EngineDep) -> Response:
    """The list page, or its live part for htmx's poll (204 when nothing changed since ``seen``)."""
    polled = bool(request.headers.get("hx-request"))
    try:
        filters = parse_filters(request.query_params.multi_items())
    except BadFilter as bad:
        return _refused(request, bad.status_code, bad.reasons)
    version = await newest_change(engine)
    if polled and request.query_params.get("seen") == version:
        return Response(status_code=204)
    filters = filters.model_copy(update={"common_type": await is_common_type(engine, filters.type)})
    try:
        page, searched_to = await search_page(engine, filters)
    except HTTPException as refused:  # a cursor this list did not give out
        return _refused(request, refused.status_code, [str(refused.detail)])
    context = {
        "searched_to": searched_to,
        "scan_cap": SCAN_CAP,
        **_form_context(filters.form()),
        "filters": filters,
        "page": page,
        "subtask_counts": await subtask_counts(engine, [item.task_id for item in page.items]),
        "recovered": await recovered_tasks(engine, [item.task_id for item in page.items]),
        "counts": await status_counts(engine, filters),
        "seen": version,
        "poll_url": "/ui/?" + filters.query(cursor=filters.cursor),
        "poll_ms": POLL_MS,
        "input_name": input_name,
    }
    return render(request, "tasks_live.html" if polled else "tasks.html", context)


def _refused(request: Request, status_code: int, reasons: list[str]) -> HTMLResponse:
    """The 4xx page: why, and the form again with what was typed (escaped by the template)."""
    typed = {name: request.query_params.get(name, "") for name in FILTER_NAMES}
    return render(request, "tasks_error.html", {**_form_context(typed), "reasons": reasons}, status_code=status_code)


def _form_context(form: Mapping[str, str]) -> dict[str, Any]:
    return {"form": form, "statuses": list(STATUSES), "count_cap": COUNT_CAP, "scan_cap": SCAN_CAP}


async def search_page(engine: AsyncEngine, filters: TaskFilters) -> tuple[TaskPage, datetime | None]:
    """The page of tasks, and for a ``contains`` search that stopped at :data:`SCAN_CAP`, where it stopped
    (``api.tasks.searched_page``, as the query API searches)."""
    plain = filters.conditions(with_text=False)
    return await searched_page(
        engine, plain, filters.q, filters.match, filters.limit, filters.cursor, filters.parts, SCAN_CAP
    )


def window_end_select(filters: TaskFilters) -> sa.Select[Any]:
    """The last task a ``contains`` page may read: the SCAN_CAP-th, newest first, under the other filters."""
    return api_window_end_select(filters.conditions(with_text=False), filters.cursor, filters.parts, SCAN_CAP)


def parse_filters(params: list[tuple[str, str]]) -> TaskFilters:
    """The filters of the URL, or :class:`BadFilter` with every reason (empty form fields mean "any")."""
    given: dict[str, str] = {}
    for name, value in params:
        if "\x00" in name or "\x00" in value:
            raise BadFilter(422, [f"query parameter {name!r} contains NUL"])
        if name not in FILTER_NAMES or value == "":
            continue
        if name in given:
            raise BadFilter(422, [f"{name}: given more than once"])
        given[name] = value
    try:
        filters = TaskFilters.model_validate(given)
    except ValidationError as invalid:
        raise BadFilter(422, [_reason(error) for error in invalid.errors()]) from None
    if filters.since and filters.until and filters.since >= filters.until:
        raise BadFilter(422, ["since must be before until"])
    return filters


def _reason(error: Mapping[str, Any]) -> str:
    """``name: what is wrong`` (without echoing the value: the page shows the form with it, escaped)."""
    where = ".".join(str(part) for part in error["loc"]) or "query"
    return f"{where}: {error['msg']}"


def _form_time(value: datetime | None) -> str | None:
    """An instant as a ``datetime-local`` field shows it: UTC, no offset (the page says the fields are UTC)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") if value else None


async def newest_change(engine: AsyncEngine) -> str:
    """What the live view compares: the latest task change and the latest projection (each an index's last entry).

    ``last_received_at`` moves with every new notification; ``projected_at`` also with a late or
    replayed one (a reprojection, a spooled notification) that changes a task without being newer.
    """
    async with engine.connect() as connection:
        newest = (await connection.execute(newest_change_select())).one()
    return "|".join(str(value or "") for value in newest)


def newest_change_select() -> sa.Select[Any]:
    return sa.select(
        sa.select(sa.func.max(tasks.c.last_received_at)).scalar_subquery(),
        sa.select(sa.func.max(notifications.c.projected_at)).scalar_subquery(),
    )


async def subtask_counts(engine: AsyncEngine, task_ids: list[str]) -> dict[str, tuple[int, int]]:
    """Each task's subtasks, total and failed: one grouped query over the page's tasks."""
    if not task_ids:
        return {}
    async with engine.connect() as connection:
        rows = (await connection.execute(subtask_count_select(task_ids))).all()
    return {task_id: (int(total), int(failures or 0)) for task_id, total, failures in rows}


#: The channel of notifications recovered through the MPS API (``reconcile.py``): no callback brought them.
RECOVERED_CHANNEL = "api"


async def recovered_tasks(engine: AsyncEngine, task_ids: list[str]) -> set[str]:
    """Those of the page's tasks with a notification recovered through the MPS API: one query, as the counts."""
    if not task_ids:
        return set()
    async with engine.connect() as connection:
        return set((await connection.execute(recovered_select(task_ids))).scalars())


def recovered_select(task_ids: list[str]) -> sa.Select[Any]:
    """The ``task_ids`` with a notification on channel ``api``, through the notifications' (task_id, id) index."""
    return (
        sa.select(notifications.c.task_id)
        .where(notifications.c.task_id.in_(task_ids), notifications.c.channel == RECOVERED_CHANNEL)
        .distinct()
    )


def subtask_count_select(task_ids: list[str]) -> sa.Select[Any]:
    """(task_id, subtasks, failed subtasks) of ``task_ids``, through the subtasks' task_id index."""
    failed = sa.func.sum(sa.case((SUBTASK_FAILED, 1), else_=0))
    return (
        sa.select(subtasks.c.task_id, sa.func.count(), failed)
        .where(subtasks.c.task_id.in_(task_ids))
        .group_by(subtasks.c.task_id)
    )


def status_count_select(filters: TaskFilters, status: str) -> sa.Select[Any]:
    """How many tasks of ``status`` match the other filters, reading at most ``COUNT_CAP + 1`` of each part."""
    terms = [*filters.conditions(with_status=False), STATUSES[status]]
    matching = [
        sa.select(sa.literal(1).label("one")).select_from(tasks).where(*terms, *part).limit(COUNT_CAP + 1)
        for part in filters.parts
    ]
    counted = matching[0] if len(matching) == 1 else sa.union_all(*(sa.select(q.subquery()) for q in matching))
    return sa.select(sa.func.count()).select_from(counted.subquery())


async def status_counts(engine: AsyncEngine, filters: TaskFilters) -> list[StatusCount]:
    """The chips: each status counted under the other filters (bounded), none for a substring search."""
    counted = not filters.contains
    counts: list[StatusCount] = []
    async with engine.connect() as connection:
        for status in STATUSES:
            count = (await connection.execute(status_count_select(filters, status))).scalar_one() if counted else None
            counts.append(StatusCount(status, count, "/ui/?" + filters.query(status=status)))
    return counts


def input_name(task: Mapping[str, Any] | Any) -> str:
    """The input's file name: MPS's VideoName, else the last part of the input's location."""
    name = getattr(task, "video_name", None)
    if name:
        return str(name)
    location = getattr(task, "input_location", None) or ""
    return str(location).rstrip("/").rsplit("/", 1)[-1]
