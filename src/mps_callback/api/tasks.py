"""``/v1/tasks``: list and filter tasks, one task with all it produced, its segments and history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, NoReturn

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mps_callback.api import cursor as cursors
from mps_callback.api.deps import EngineDep
from mps_callback.api.params import KNOWN_SEGMENT_KINDS, SegmentKind, StatusFilter, UtcInstant, refuse_nul
from mps_callback.api.schemas import (
    NotificationPage,
    NotificationSummary,
    Output,
    Segment,
    SegmentPage,
    Subtask,
    TaskDetail,
    TaskPage,
    TaskSummary,
)
from mps_callback.store.tables import notifications, outputs, segments, subtasks, tasks

router = APIRouter(prefix="/v1", tags=["query"], dependencies=[Depends(refuse_nul)])

#: A task's type: its EventType, or for a live task (which has none) the NotificationType of
#: its latest notification: one backward step on the journal's (task_id, id) index per live row.
TASK_TYPE = sa.case(
    (
        tasks.c.kind == "live",
        sa.select(notifications.c.notification_type)
        .where(notifications.c.task_id == tasks.c.task_id)
        .order_by(notifications.c.id.desc())
        .limit(1)
        .scalar_subquery(),
    ),
    else_=tasks.c.event_type,
).label("type")
#: A failed task, as an equality: MariaDB reads ``failed IS TRUE`` as a scan of the whole (failed, ...)
#: index from its ``false`` end (1.35 s to count 10,000 failed tasks of a million), ``failed = true`` as a range.
FAILED = tasks.c.failed == sa.true()
#: A filter as disjoint parts of ``tasks``, each a sequence of WHERE terms; the list reads each through its index.
Parts = Sequence[Sequence[sa.ColumnElement[bool]]]
#: No split: one part with no terms.
WHOLE: Parts = ((),)
SEGMENT_KIND_HELP = "one of " + ", ".join(KNOWN_SEGMENT_KINDS) + "; or <family>.<list> for a list no family names"
SUMMARY_COLUMNS = [tasks.c[name] for name in TaskSummary.model_fields if name != "type"] + [TASK_TYPE]
Cursor = Annotated[
    str | None, Query(max_length=cursors.MAX_CURSOR_CHARS, description="next_cursor of the previous page")
]


Match = Literal["exact", "contains"]
#: A ``contains`` search reads at most this many tasks per page (the other filters applied), then its next
#: cursor says where to search on: no B-tree index serves a substring, and a rare one must not read every task.
SCAN_CAP = 20_000


@router.get("/tasks", response_model=TaskPage, summary="Tasks, newest first")
async def list_tasks(
    engine: EngineDep,
    status: Annotated[
        StatusFilter | None, Query(description="PROCESSING, FINISH, or failed (any subtask failed, or an error)")
    ] = None,
    kind: Literal["vod", "live"] | None = None,
    type: Annotated[
        str | None,
        Query(
            max_length=128,
            description=(
                "EventType of file tasks (WorkflowTask, ScheduleTask, ...), or a NotificationType live tasks have "
                "received (ProcessEof, AiSmartSubtitleResult, ...)"
            ),
        ),
    ] = None,
    event_type: Annotated[str | None, Query(max_length=128, description="EventType of file tasks only")] = None,
    since: Annotated[
        UtcInstant | None, Query(description="first notification at or after (ISO 8601; no offset: UTC)")
    ] = None,
    until: Annotated[
        UtcInstant | None, Query(description="first notification before (ISO 8601; no offset: UTC)")
    ] = None,
    q: Annotated[
        str | None, Query(max_length=200, description="text in TaskId, SessionId, SessionContext or input")
    ] = None,
    match: Annotated[
        Match,
        Query(
            description=(
                "how q matches: `contains` (anywhere in TaskId, SessionId, SessionContext or input; a page reads at "
                f"most {SCAN_CAP:,} tasks, newest first, and may hold fewer than `limit` items: follow next_cursor) "
                "or `exact` (a TaskId or SessionId, through their indexes at any table size)"
            )
        ),
    ] = "contains",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Cursor = None,
) -> TaskPage:
    plain = task_conditions(status=status, kind=kind, event_type=event_type, since=since, until=until)
    parts = type_parts(type, await is_common_type(engine, type))
    page, _ = await searched_page(engine, plain, q, match, limit, cursor, parts, SCAN_CAP)
    return page


def text_condition(q: str | None, match: Match) -> sa.ColumnElement[bool] | None:
    """``exact``: a TaskId or SessionId (their indexes); ``contains``: the text anywhere in five columns."""
    if not q:
        return None
    if match == "exact":
        return sa.or_(tasks.c.task_id == q, tasks.c.session_id == q)
    pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    columns = (tasks.c.task_id, tasks.c.session_id, tasks.c.session_context, tasks.c.input_location, tasks.c.video_name)
    return sa.or_(*(column.like(pattern, escape="\\") for column in columns))


async def searched_page(
    engine: AsyncEngine,
    plain: list[sa.ColumnElement[bool]],
    q: str | None,
    match: Match,
    limit: int,
    cursor: str | None,
    parts: Parts = WHOLE,
    scan_cap: int = SCAN_CAP,
) -> tuple[TaskPage, datetime | None]:
    """The page of tasks matching ``plain`` and the text ``q``, and for a search that stopped at ``scan_cap``, where.

    For a ``contains`` search the window's end is the ``scan_cap``-th task under
    the other filters (an index walk, no row read); the search reads no further, and when it found less than a
    page there, its next cursor is the window's end: the next page searches on from there.
    """
    text = text_condition(q, match)
    conditions = [*plain, *([text] if text is not None else [])]
    end = None
    if text is not None and match == "contains":
        async with engine.connect() as connection:
            end = (await connection.execute(window_end_select(plain, cursor, parts, scan_cap))).first()
        if end is not None:
            conditions.append(within_window(end.first_received_at, end.task_id))
    page = await task_page(engine, conditions, limit, cursor, parts)
    if end is None or page.next_cursor is not None:
        return page, None
    next_cursor = cursors.encode("tasks", end.first_received_at, end.task_id)
    return TaskPage(items=page.items, next_cursor=next_cursor), end.first_received_at


def within_window(end_time: datetime, end_id: str) -> sa.ColumnElement[bool]:
    """Tasks up to the window's last one, in the list's order (newest first): it and those before it."""
    return sa.and_(  # the first term is implied by the OR; it is the bound PostgreSQL can read the index with
        tasks.c.first_received_at >= end_time,
        sa.or_(
            tasks.c.first_received_at > end_time,
            sa.and_(tasks.c.first_received_at == end_time, tasks.c.task_id >= end_id),
        ),
    )


def window_end_select(
    plain: list[sa.ColumnElement[bool]], cursor: str | None, parts: Parts, scan_cap: int
) -> sa.Select[Any]:
    """The last task a ``contains`` page may read: the ``scan_cap``-th, newest first, under the other filters."""
    after = [after_cursor(cursor)] if cursor is not None else []
    queries = [sa.select(tasks.c.first_received_at, tasks.c.task_id).where(*plain, *after, *part) for part in parts]
    return newest_first(queries, 1, offset=scan_cap - 1)


def task_conditions(
    *,
    status: str | None = None,
    kind: str | None = None,
    event_type: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[sa.ColumnElement[bool]]:
    """The WHERE terms of the task list's filters (validated values) but ``type`` (see :func:`type_parts`) and
    the text (:func:`text_condition`).

    Shared with the dashboard's list and counts."""
    conditions: list[sa.ColumnElement[bool]] = []
    if status is not None:
        conditions.append(FAILED if status == "failed" else tasks.c.status == status)
    if kind is not None:
        conditions.append(tasks.c.kind == kind)
    if event_type is not None:
        conditions.append(tasks.c.event_type == event_type)
    if since is not None:
        conditions.append(tasks.c.first_received_at >= since)
    if until is not None:
        conditions.append(tasks.c.first_received_at < until)
    return conditions


async def task_page(
    engine: AsyncEngine,
    conditions: list[sa.ColumnElement[bool]],
    limit: int,
    cursor: str | None,
    parts: Parts = WHOLE,
) -> TaskPage:
    """Tasks matching ``conditions``, newest first, after ``cursor``: keyset paging on (first_received_at, task_id)."""
    async with engine.connect() as connection:
        rows = (await connection.execute(task_select(conditions, limit, cursor, parts))).mappings().all()
    items = [dict(row) for row in rows[:limit]]
    last = items[-1] if len(rows) > limit else None
    return TaskPage(
        items=items, next_cursor=cursors.encode("tasks", last["first_received_at"], last["task_id"]) if last else None
    )


def task_select(
    conditions: list[sa.ColumnElement[bool]], limit: int, cursor: str | None, parts: Parts = WHOLE
) -> sa.Select[Any]:
    """The list's query (one row more than ``limit``, to know whether a next page exists); 400 for a bad cursor."""
    after = [after_cursor(cursor)] if cursor is not None else []
    queries = [sa.select(*SUMMARY_COLUMNS).where(*conditions, *part, *after) for part in parts]
    return newest_first(queries, limit + 1)


def newest_first(queries: list[sa.Select[Any]], limit: int, offset: int = 0) -> sa.Select[Any]:
    """Rows ``offset`` to ``offset + limit`` of ``queries`` (over disjoint parts of ``tasks``), newest first.

    Each part reads its own index in the list's order and stops at ``offset + limit`` rows; the
    union of those few rows is sorted again. One OR over the parts would read both ranges whole
    and sort them (MariaDB's sort_union), or walk the list's index filtering every row.
    """
    if len(queries) == 1:
        return queries[0].order_by(*TASK_ORDER).offset(offset or None).limit(limit)
    each = [sa.select(query.order_by(*TASK_ORDER).limit(offset + limit).subquery()) for query in queries]
    merged = sa.union_all(*each).subquery()
    order = (merged.c.first_received_at.desc(), merged.c.task_id.desc())
    return sa.select(merged).order_by(*order).offset(offset or None).limit(limit)


#: The list's order, newest first: the (first_received_at, task_id) index read backwards.
TASK_ORDER = (tasks.c.first_received_at.desc(), tasks.c.task_id.desc())


def after_cursor(cursor: str) -> sa.ColumnElement[bool]:
    """Tasks after the one ``cursor`` names, in the list's order; 400 for a cursor the list did not give out."""
    after_time, after_id = cursors.decode("tasks", cursor, datetime, str)
    return sa.and_(  # the first term is implied by the OR; without it PostgreSQL walked the index from its
        tasks.c.first_received_at <= after_time,  # newest end filtering (0.27 s half-way through a million)
        sa.or_(
            tasks.c.first_received_at < after_time,
            sa.and_(tasks.c.first_received_at == after_time, tasks.c.task_id < after_id),
        ),
    )


#: A live NotificationType held by more subtasks than this is found by walking the live tasks in list
#: order and asking each (a page costs about ``limit x live tasks / holders`` probes); a rarer one by
#: reading its holders through the subtasks' (group_name, task_id) index (at most this many rows).
COMMON_TYPE_HOLDERS = 2_000
#: The databases whose planner needs that count: MariaDB and MySQL turn the EXISTS into a semi-join whatever
#: the numbers; PostgreSQL and SQLite choose by their own statistics (and PostgreSQL's index-only count reads
#: the table while its visibility map lags, 67 ms p99 at a million tasks after a purge).
COUNTED_BY = frozenset({"mysql", "mariadb"})


def type_parts(type_name: str | None, common: bool = False) -> Parts:
    """File tasks by EventType; live tasks that have received a notification of that NotificationType.

    Two disjoint parts (by kind), each read through its own index in list order: the EventType
    one on (event_type, first_received_at, task_id), the live one on (kind, ...).

    A live task's notifications each become subtasks grouped under their NotificationType,
    a handful of rows per task however long the stream, where the journal holds one row per
    notification (thousands for a stream of hours): the live part asks the subtasks. How depends
    on ``common`` (:func:`is_common_type` counts): MariaDB turns an EXISTS into a semi-join that
    reads every holder and sorts them (8 s a page at 100,000 holders, bench.scale), and PostgreSQL may walk every
    live task for a type none holds; a scalar subquery is never turned into a join.
    """
    if type_name is None:
        return WHOLE
    held = (subtasks.c.task_id == tasks.c.task_id, subtasks.c.group_name == type_name)
    received: sa.ColumnElement[bool]
    if common:
        received = sa.select(sa.literal(1)).where(*held).limit(1).scalar_subquery().is_not(None)
    else:
        received = sa.exists().where(*held)
    return ((tasks.c.kind != "live", tasks.c.event_type == type_name), (tasks.c.kind == "live", received))


async def is_common_type(engine: AsyncEngine, type_name: str | None) -> bool:
    """Whether more than :data:`COMMON_TYPE_HOLDERS` subtasks hold ``type_name`` (an index-only count that stops
    there): what :func:`type_parts` needs to choose as a planner would with that count. Asked only where the
    planner does not choose itself (:data:`COUNTED_BY`); elsewhere the EXISTS is left to it."""
    if type_name is None or engine.dialect.name not in COUNTED_BY:
        return False
    holders = (
        sa.select(sa.literal(1)).where(subtasks.c.group_name == type_name).limit(COMMON_TYPE_HOLDERS + 1).subquery()
    )
    async with engine.connect() as connection:
        counted = (await connection.execute(sa.select(sa.func.count()).select_from(holders))).scalar_one()
    return bool(counted > COMMON_TYPE_HOLDERS)


@router.get(
    "/tasks/{task_id}", response_model=TaskDetail, summary="One task: subtasks, outputs with URLs, segment counts"
)
async def get_task(engine: EngineDep, task_id: str) -> TaskDetail:
    async with engine.connect() as connection:
        task = (
            (await connection.execute(sa.select(tasks, TASK_TYPE).where(tasks.c.task_id == task_id))).mappings().first()
        )
        if task is None:
            await _not_found(connection, task_id)
        subtask_rows = (
            (
                await connection.execute(
                    sa.select(subtasks).where(subtasks.c.task_id == task_id).order_by(subtasks.c.key)
                )
            )
            .mappings()
            .all()
        )
        output_rows = (
            (
                await connection.execute(
                    sa.select(outputs, subtasks.c.family)
                    .join(subtasks, subtasks.c.id == outputs.c.subtask_id)
                    .where(outputs.c.task_id == task_id)
                    .order_by(outputs.c.id)
                )
            )
            .mappings()
            .all()
        )
        counts = await connection.execute(
            sa.select(segments.c.kind, sa.func.count()).where(segments.c.task_id == task_id).group_by(segments.c.kind)
        )
        segment_counts: dict[str, int] = dict(counts.all())
    return TaskDetail(
        **task,
        subtasks=[Subtask(group=row["group_name"], **row) for row in subtask_rows],
        outputs=[Output(subtask=row["family"], **row) for row in output_rows],
        segment_counts=segment_counts,
    )


@router.get("/tasks/{task_id}/segments", response_model=SegmentPage, summary="Time-ranged items, in time order")
async def list_segments(
    engine: EngineDep,
    task_id: str,
    kind: Annotated[SegmentKind | None, Query(description=SEGMENT_KIND_HELP)] = None,
    limit: Annotated[int, Query(ge=1, le=2000)] = 200,
    cursor: Cursor = None,
) -> SegmentPage:
    query = sa.select(segments).where(segments.c.task_id == task_id)
    if kind is not None:
        query = query.where(segments.c.kind == kind)
    if cursor is not None:
        query = query.where(_after_segment(*cursors.decode("segments", cursor, float | None, int)))
    query = query.order_by(segments.c.start_s.is_(None), segments.c.start_s, segments.c.id).limit(limit + 1)
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).mappings().all()
        if not rows and cursor is None:
            exists = await connection.execute(sa.select(tasks.c.task_id).where(tasks.c.task_id == task_id))
            if exists.first() is None:
                await _not_found(connection, task_id)
    items = [Segment(start=row["start_s"], end=row["end_s"], **row) for row in rows[:limit]]
    last = items[-1] if len(rows) > limit else None
    return SegmentPage(items=items, next_cursor=cursors.encode("segments", last.start, last.id) if last else None)


def _after_segment(start: float | None, segment_id: int) -> sa.ColumnElement[bool]:
    """Segments after (start, id) in the order (start IS NULL, start, id): timed ones first, untimed last."""
    if start is None:
        return sa.and_(segments.c.start_s.is_(None), segments.c.id > segment_id)
    later = sa.or_(segments.c.start_s > start, sa.and_(segments.c.start_s == start, segments.c.id > segment_id))
    return sa.or_(segments.c.start_s.is_(None), sa.and_(segments.c.start_s.is_not(None), later))


@router.get(
    "/tasks/{task_id}/notifications", response_model=NotificationPage, summary="Every notification, oldest first"
)
async def task_notifications(
    engine: EngineDep,
    task_id: str,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Cursor = None,
) -> NotificationPage:
    columns = [notifications.c[name] for name in NotificationSummary.model_fields]
    query = sa.select(*columns).where(notifications.c.task_id == task_id)
    if cursor is not None:
        (after_id,) = cursors.decode("notifications", cursor, int)
        query = query.where(notifications.c.id > after_id)
    async with engine.connect() as connection:
        rows = (await connection.execute(query.order_by(notifications.c.id).limit(limit + 1))).mappings().all()
    if not rows and cursor is None:
        raise HTTPException(404, f"no notification received for task {task_id}")
    items = [NotificationSummary(**row) for row in rows[:limit]]
    last = items[-1] if len(rows) > limit else None
    return NotificationPage(items=items, next_cursor=cursors.encode("notifications", last.id) if last else None)


async def _not_found(connection: AsyncConnection, task_id: str) -> NoReturn:
    """404, saying whether the task is unknown or only not projected yet."""
    pending = await connection.execute(
        sa.select(sa.func.count()).select_from(notifications).where(notifications.c.task_id == task_id)
    )
    if pending.scalar_one():
        raise HTTPException(404, f"task {task_id} has notifications that are not projected yet; retry shortly")
    raise HTTPException(404, f"no task {task_id}")
