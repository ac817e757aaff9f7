"""``mps-callback reproject``: rebuild projections from the journal, all of them or only some tasks.

A task is rebuilt by deleting its rows (task, subtasks, outputs, segments) and marking every
notification of it pending, in one short transaction per batch of tasks, then projecting
them. One batch at a time, never the whole journal in one transaction: on a journal of
millions the service keeps answering, and a task is missing from the API only while its own
batch is rebuilt. The journal rows are reset before the projection rows are deleted, in the
order the projector takes its locks (journal, then tasks), so the two do not wait on each
other in a cycle; a projector that fails on it anyway counts it against no notification.

Filters narrow what is taken, and combine: ``--task`` (these TaskIds), ``--since`` (tasks
that received a notification since then), ``--failed`` (only parked notifications, tried
again without rebuilding anything else).

A notification without a TaskId (a BatchTask event) projects into a task whose id the
projector makes up (``parse._synthetic_task_id``); its journal row keeps ``task_id`` NULL.
`PROJECTED_TASK_ID` makes the same id in SQL, so such a task is selected, reset and rebuilt
with its own notifications in one batch like any other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from mps_callback.project.projector import Projector
from mps_callback.store.engine import for_writing
from mps_callback.store.tables import notifications, outputs, segments, subtasks, tasks
from mps_callback.store.types import width

#: Tasks rebuilt per transaction: a few hundred keeps each one short (a live task may hold
#: thousands of notifications).
TASK_BATCH = 100

#: The task a journal row projects into, in SQL: its TaskId, or for a row without one the id
#: ``parse._synthetic_task_id`` makes (``<type>-session-<SessionId>``, clipped to the column,
#: else ``<type>-<first 32 of the dedupe key>``); a test holds the two to the same answer.
_TYPE = sa.func.coalesce(notifications.c.event_type, notifications.c.notification_type, "")
SYNTHETIC_TASK_ID = sa.case(
    (
        notifications.c.session_id.is_not(None),
        sa.func.substr(_TYPE + "-session-" + notifications.c.session_id, 1, width(tasks.c.task_id)),
    ),
    else_=_TYPE + "-" + sa.func.substr(notifications.c.dedupe_key, 1, 32),
)
PROJECTED_TASK_ID = sa.func.coalesce(notifications.c.task_id, SYNTHETIC_TASK_ID)


def of_tasks(task_ids: Sequence[str]) -> sa.ColumnElement[bool]:
    """The journal rows of these tasks: by TaskId on the index, and the few without one by the made-up id."""
    return sa.or_(
        notifications.c.task_id.in_(task_ids),
        sa.and_(notifications.c.task_id.is_(None), SYNTHETIC_TASK_ID.in_(task_ids)),
    )


#: A journal row waiting for the projector as if it had just arrived.
PENDING: dict[str, Any] = {
    "projected_at": None,
    "projection_error": None,
    "projection_attempts": 0,
    "next_attempt_at": None,
    "projection_failed_at": None,
}

#: A rebuilt task's journal row pending again; ``replayed`` when it had been projected, so its task's
#: events, announced then, are not announced again (store/outbox.py). Set first: MySQL evaluates an
#: UPDATE's assignments left to right, each seeing the ones before it.
REPLAY: tuple[tuple[str, Any], ...] = (
    ("replayed", notifications.c.projected_at.is_not(None)),
    *PENDING.items(),
)

#: The projection tables, children first.
PROJECTIONS = (segments, outputs, subtasks, tasks)


@dataclass(frozen=True, slots=True)
class Selection:
    """Which notifications ``reproject`` takes: every one, or those matching every filter given."""

    task_ids: tuple[str, ...] = ()
    since: datetime | None = None
    failed: bool = False

    @property
    def everything(self) -> bool:
        return not self.task_ids and self.since is None and not self.failed

    def where(self) -> list[sa.ColumnElement[bool]]:
        """The journal rows the filters select."""
        conditions: list[sa.ColumnElement[bool]] = []
        if self.task_ids:
            conditions.append(of_tasks(self.task_ids))
        if self.since is not None:
            conditions.append(notifications.c.received_at >= self.since)
        if self.failed:
            conditions += [notifications.c.projected_at.is_(None), notifications.c.projection_failed_at.is_not(None)]
        return conditions


def utc_instant(text: str) -> datetime:
    """``--since``: an ISO 8601 date or time as a UTC instant (a time without offset is UTC); else ValueError."""
    instant = datetime.fromisoformat(text)
    if instant.tzinfo is None:
        return instant.replace(tzinfo=UTC)
    try:
        return instant.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-01:00 lies past year 9999 in UTC
        raise ValueError(f"{text} is out of range once converted to UTC") from None


async def reproject(
    engine: AsyncEngine, projector: Projector, selection: Selection, progress: Callable[[int], None] | None = None
) -> int:
    """Rebuild what ``selection`` takes, batch after batch; return how many notifications were projected."""
    if selection.failed:
        await retry_failed(engine, selection)
        return await projector.drain(progress)
    projected = 0
    async for batch in _task_batches(engine, selection):
        await reset_tasks(engine, batch)
        projected += await projector.drain(progress)
    return projected


async def count(engine: AsyncEngine, selection: Selection) -> int:
    """How many notifications ``reproject`` will project (for its progress bar): every notification of the
    tasks it rebuilds, or the parked ones ``--failed`` selects."""
    query = sa.select(sa.func.count()).select_from(notifications)
    if selection.failed:
        query = query.where(*selection.where())
    elif not selection.everything:
        touched = sa.select(PROJECTED_TASK_ID).where(*selection.where())
        query = query.where(PROJECTED_TASK_ID.in_(touched))
    async with engine.connect() as connection:
        return int((await connection.execute(query)).scalar_one())


async def retry_failed(engine: AsyncEngine, selection: Selection | None = None) -> int:
    """Make the parked notifications (those ``selection`` takes, if given) due again; return how many."""
    parked = replace(selection or Selection(), failed=True)
    async with for_writing(engine).begin() as connection:
        result = await connection.execute(notifications.update().where(*parked.where()).values(PENDING))
        return int(result.rowcount)


async def reset_tasks(engine: AsyncEngine, task_ids: Sequence[str]) -> None:
    """Forget these tasks' projection rows and mark all their notifications pending, in one transaction."""
    theirs = of_tasks(task_ids)
    async with for_writing(engine).begin() as connection:
        await connection.execute(notifications.update().where(theirs).ordered_values(*REPLAY))
        for table in PROJECTIONS:
            await connection.execute(table.delete().where(table.c.task_id.in_(task_ids)))
        # One that arrived and was projected between the two statements just lost its rows: pending again.
        await connection.execute(
            notifications.update().where(theirs, notifications.c.projected_at.is_not(None)).ordered_values(*REPLAY)
        )


async def reset_projections(engine: AsyncEngine) -> int:
    """Forget every projection and mark the whole journal pending, batch by batch; return the journal's size.

    Nothing is projected meanwhile by this call (``reproject`` projects each batch as it goes).
    """
    async for batch in _task_batches(engine, Selection()):
        await reset_tasks(engine, batch)
    return await count(engine, Selection())


async def _task_batches(engine: AsyncEngine, selection: Selection) -> AsyncIterator[list[str]]:
    """The TaskIds to rebuild, ``TASK_BATCH`` at a time, in the database's own order (a keyset on task_id).

    Every task a selected notification names; with no ``--since``, also the tasks named by
    ``--task`` (or, with no filter, every task) that have rows but no notification left.
    """
    after: str | None = None
    while batch := await _next_tasks(engine, selection, after):
        yield batch
        after = batch[-1]


async def _next_tasks(engine: AsyncEngine, selection: Selection, after: str | None) -> list[str]:
    def later(column: sa.ColumnElement[str]) -> list[sa.ColumnElement[bool]]:
        return [] if after is None else [column > after]

    named = (
        sa.select(notifications.c.task_id)
        .where(notifications.c.task_id.is_not(None), *selection.where(), *later(notifications.c.task_id))
        .distinct()
        .order_by(notifications.c.task_id)
        .limit(TASK_BATCH)
        .subquery()
    )
    made_up = (
        sa.select(SYNTHETIC_TASK_ID.label("task_id"))
        .where(notifications.c.task_id.is_(None), *selection.where(), *later(SYNTHETIC_TASK_ID))
        .distinct()
        .order_by(SYNTHETIC_TASK_ID)
        .limit(TASK_BATCH)
        .subquery()
    )
    sources = [sa.select(named.c.task_id), sa.select(made_up.c.task_id)]
    if selection.since is None:
        stored = sa.select(tasks.c.task_id).where(*later(tasks.c.task_id))
        if selection.task_ids:
            stored = stored.where(tasks.c.task_id.in_(selection.task_ids))
        kept = stored.order_by(tasks.c.task_id).limit(TASK_BATCH).subquery()
        sources.append(sa.select(kept.c.task_id))
    either = sa.union(*sources).subquery()
    query = sa.select(either.c.task_id).order_by(either.c.task_id).limit(TASK_BATCH)
    async with engine.connect() as connection:
        return list((await connection.execute(query)).scalars())
