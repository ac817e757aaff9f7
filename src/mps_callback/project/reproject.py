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

#: Tasks rebuilt per transaction: a few hundred keeps each one short (a live task may hold
#: thousands of notifications).
TASK_BATCH = 100
#: Journal rows without a TaskId (Tencent VOD events: journal only) reset per transaction.
ROW_BATCH = 1000

#: A journal row waiting for the projector as if it had just arrived.
PENDING: dict[str, Any] = {
    "projected_at": None,
    "projection_error": None,
    "projection_attempts": 0,
    "next_attempt_at": None,
    "projection_failed_at": None,
}

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
            conditions.append(notifications.c.task_id.in_(self.task_ids))
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
    if selection.everything:
        async for _ in _rows_without_task(engine):
            projected += await projector.drain(progress)
    return projected


async def count(engine: AsyncEngine, selection: Selection) -> int:
    """How many notifications ``reproject`` will project (for its progress bar): every notification of the
    tasks it rebuilds, or the parked ones ``--failed`` selects."""
    query = sa.select(sa.func.count()).select_from(notifications)
    if selection.failed:
        query = query.where(*selection.where())
    elif not selection.everything:
        touched = sa.select(notifications.c.task_id).where(*selection.where())
        query = query.where(notifications.c.task_id.in_(touched))
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
    theirs = notifications.c.task_id.in_(task_ids)
    async with for_writing(engine).begin() as connection:
        await connection.execute(notifications.update().where(theirs).values(PENDING))
        for table in PROJECTIONS:
            await connection.execute(table.delete().where(table.c.task_id.in_(task_ids)))
        # One that arrived and was projected between the two statements just lost its rows: pending again.
        await connection.execute(
            notifications.update().where(theirs, notifications.c.projected_at.is_not(None)).values(PENDING)
        )


async def reset_projections(engine: AsyncEngine) -> int:
    """Forget every projection and mark the whole journal pending, batch by batch; return the journal's size.

    Nothing is projected meanwhile by this call (``reproject`` projects each batch as it goes).
    """
    async for batch in _task_batches(engine, Selection()):
        await reset_tasks(engine, batch)
    async for _ in _rows_without_task(engine):
        pass
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
    sources = [sa.select(named.c.task_id)]
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


async def _rows_without_task(engine: AsyncEngine) -> AsyncIterator[int]:
    """Mark the journal rows that name no task pending, ``ROW_BATCH`` per transaction (a keyset on id)."""
    after = 0
    while True:
        async with for_writing(engine).begin() as connection:
            ids = list(
                (
                    await connection.execute(
                        sa.select(notifications.c.id)
                        .where(notifications.c.task_id.is_(None), notifications.c.id > after)
                        .order_by(notifications.c.id)
                        .limit(ROW_BATCH)
                    )
                ).scalars()
            )
            if not ids:
                return
            await connection.execute(notifications.update().where(notifications.c.id.in_(ids)).values(PENDING))
        yield len(ids)
        after = ids[-1]
