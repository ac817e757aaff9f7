"""The projector: journal rows -> tasks, subtasks, outputs, segments, batch by batch.

Any number of projectors may run (inside ``serve`` and as ``mps-callback background``): each
claims pending journal rows with ``FOR UPDATE SKIP LOCKED`` (SQLite has one writer and
needs none) and locks the task rows it touches in task-id order, so two projectors never
interleave on a task and never deadlock. A batch is one transaction, bounded in rows and in
body bytes (a backlog of 15 MiB bodies must not take the process to gigabytes).

A failure stays with its notification: when a batch fails while the database takes
writes, its rows are projected one by one; one that fails alone is retried alone, with
back-off, ``MAX_ATTEMPTS`` times, then parked (``projection_failed_at``, its error kept;
``reproject --failed`` tries again). When the database itself is away, nothing is counted
against any notification: the loop backs off and waits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mps_callback import metrics
from mps_callback.project import rows
from mps_callback.project.merge import Claimed, StoredSubtask, TaskMerge, merge_task, starting_row
from mps_callback.project.parse import parse
from mps_callback.project.rank import Provenance
from mps_callback.storage import OutputUrls
from mps_callback.store.bulk import insert_many, overwrite_many
from mps_callback.store.engine import for_writing
from mps_callback.store.errors import database_fault, describe
from mps_callback.store.outbox import NO_OUTBOX, Outbox, TaskChange
from mps_callback.store.tables import notifications, outputs, segments, subtasks, tasks
from mps_callback.store.upsert import insert_skipping_duplicates

log = logging.getLogger(__name__)

BATCH_SIZE = 200
#: Body bytes one batch may take in (at least one notification, whatever its size).
BATCH_BYTES = 8 * 1024 * 1024
#: Attempts at one notification that fails alone before it is parked, 2 s, 4 s ... apart.
MAX_ATTEMPTS = 6
MAX_RETRY_DELAY = timedelta(hours=1)
#: How long the loop waits between passes while the database is away: doubling up to this.
MAX_OUTAGE_WAIT_SECONDS = 30.0
#: While a backlog fills whole batches, how often a pass looks for failures due again: that look
#: reads every pending journal row (no index serves it), ~10 µs each, so with 20,000 pending it
#: cost more than the batch itself. A retry then waits at most this much past its back-off.
RETRY_LOOK_SECONDS = 5.0
#: Passes one projector runs side by side on MariaDB/MySQL and PostgreSQL (SQLite has one writer).
#: Two keep both the parser and the database busy; more only queue for the one core Python uses.
LOOPS = 2


class DatabaseAway(Exception):
    """The database does not take writes: nothing is held against any notification."""


class Projector:
    def __init__(
        self,
        engine: AsyncEngine,
        urls: OutputUrls | None = None,
        batch_size: int = BATCH_SIZE,
        max_attempts: int = MAX_ATTEMPTS,
        outbox: Outbox = NO_OUTBOX,
    ):
        self._engine = for_writing(engine)
        self._outbox = outbox  # the task.* events each change owes the sinks, in its transaction
        self._max_attempts = max_attempts
        self._urls = urls or OutputUrls()
        self._batch_size = batch_size
        self._retries_looked_at = -RETRY_LOOK_SECONDS  # monotonic seconds: the first pass looks

    async def run_once(self) -> int:
        """Project one batch of new notifications and the failed ones due again; return how many were taken.

        The failed ones are looked for whenever the batch was not full (nothing is waiting behind
        it), and every ``RETRY_LOOK_SECONDS`` while a backlog is worked through.

        Raises ``DatabaseAway`` when the database does not take writes.
        """
        fresh = await self._fresh_batch()
        if fresh >= self._batch_size and time.monotonic() - self._retries_looked_at < RETRY_LOOK_SECONDS:
            return fresh
        self._retries_looked_at = time.monotonic()
        return fresh + await self._due_retries()

    async def drain(self, progress: Callable[[int], None] | None = None) -> int:
        """Project until nothing is pending (or only failures waiting for their retry time)."""
        total = 0
        while count := await self.run_once():
            total += count
            if progress:
                progress(count)
        return total

    async def run_forever(self, idle_seconds: float = 0.2, loops: int | None = None) -> None:
        """Project batch after batch; when nothing is pending, look again after ``idle_seconds``.

        ``loops`` passes run side by side (default: ``LOOPS``, one on SQLite), each with its own
        connection: while one waits for the database, another parses and merges. They share the
        journal as separate projectors do (``SKIP LOCKED``, task locks in task-id order).
        """
        count = loops or (1 if self._engine.dialect.name == "sqlite" else LOOPS)
        await asyncio.gather(*(self._loop(idle_seconds) for _ in range(count)))

    async def _loop(self, idle_seconds: float) -> None:
        """One projecting loop. While the database is away the wait doubles up to
        ``MAX_OUTAGE_WAIT_SECONDS``, with one log line when the outage starts and one when it ends."""
        wait, away = idle_seconds, False
        while True:
            try:
                taken = await self.run_once()
            except Exception as error:  # DatabaseAway, or the database failed mid-pass
                if not away:
                    log.warning("projector waits for the database", extra={"error": describe(error)})
                away, wait = True, min(max(wait * 2, 1.0), MAX_OUTAGE_WAIT_SECONDS)
                await asyncio.sleep(wait)
                continue
            if away:
                log.info("database back; projecting again")
            away, wait = False, idle_seconds
            if not taken:
                await asyncio.sleep(idle_seconds)

    # ---------------------------------------------------------------- claiming

    async def _fresh_batch(self) -> int:
        """New notifications (never failed) in one transaction; if it fails, each alone."""
        ids: list[int] = []
        try:
            async with self._engine.begin() as connection:
                ids = await self._lock(connection, _fresh())
                if ids:
                    await self._project(connection, await _load(connection, ids))
            return len(ids)
        except Exception as error:
            await _probe(self._engine, error)
            log.warning(
                "projection batch failed; projecting its notifications one by one",
                extra={"error": describe(error), "batch": len(ids)},
            )
            for notification_id in ids:
                await self._project_alone(notification_id)
            return len(ids)

    async def _due_retries(self) -> int:
        """Notifications that failed before and whose back-off has passed, each alone."""
        async with self._engine.connect() as connection:
            due = await connection.execute(
                sa.select(notifications.c.id)
                .where(*_due(), notifications.c.projection_attempts > 0)
                .order_by(notifications.c.next_attempt_at)
                .limit(self._batch_size)
            )
            ids = [row.id for row in due]
        for notification_id in ids:
            await self._project_alone(notification_id)
        return len(ids)

    async def _project_alone(self, notification_id: int) -> None:
        try:
            async with self._engine.begin() as connection:
                if await self._lock(connection, [notifications.c.id == notification_id]):
                    await self._project(connection, await _load(connection, [notification_id]))
        except Exception as error:
            await _probe(self._engine, error)
            await self._mark_failed(notification_id, error)

    async def _lock(self, connection: AsyncConnection, where: list[sa.ColumnElement[bool]]) -> list[int]:
        """Lock up to a batch of due rows and keep the first ones whose bodies fit in ``BATCH_BYTES``.

        Rows locked beyond that are released at commit, for this or another projector's next batch.
        """
        sizes = await connection.execute(
            sa.select(notifications.c.id, notifications.c.body_bytes)
            .where(*_due(), *where)
            .order_by(notifications.c.id)
            .limit(self._batch_size)
            .with_for_update(skip_locked=True)
        )
        ids: list[int] = []
        total = 0
        for row in sizes:
            if ids and total + row.body_bytes > BATCH_BYTES:
                break
            ids.append(row.id)
            total += row.body_bytes
        return ids

    async def _mark_failed(self, notification_id: int, error: Exception) -> None:
        """One more failed attempt: retried after a back-off, or parked after ``MAX_ATTEMPTS``."""
        metrics.PROJECTION_FAILURES.inc()
        async with self._engine.begin() as connection:
            attempts = (
                await connection.execute(
                    sa.select(notifications.c.projection_attempts).where(notifications.c.id == notification_id)
                )
            ).scalar_one() + 1
            now = datetime.now(UTC)
            parked = attempts >= self._max_attempts
            await connection.execute(
                notifications.update()
                .where(notifications.c.id == notification_id)
                .values(
                    projection_error=describe(error)[:4000],
                    projection_attempts=attempts,
                    next_attempt_at=None if parked else now + min(timedelta(seconds=2**attempts), MAX_RETRY_DELAY),
                    projection_failed_at=now if parked else None,
                )
            )
        if parked:
            metrics.PROJECTION_PARKED.inc()
        log.error(
            "notification parked: its projection failed every attempt"
            if parked
            else "notification failed to project; retried later",
            extra={"notification_id": notification_id, "attempts": attempts, "error": describe(error)},
        )

    # ---------------------------------------------------------------- merging (merge.py) and writing (rows.py)

    async def _project(self, connection: AsyncConnection, claimed: list[Claimed]) -> None:
        for item in claimed:
            item.projection = parse(item.body, self._urls)
        by_task: dict[str, list[Claimed]] = defaultdict(list)
        for item in claimed:
            if item.projection is not None:  # None: a Tencent VOD event, journal only, nothing to project
                by_task[item.projection.task_id].append(item)
        task_ids = sorted(by_task)
        merges = await _lock_tasks(connection, task_ids, by_task) if task_ids else {}
        announced = await self._outbox.resume(
            connection,
            {task_id: merge.row for task_id, merge in merges.items()},
            rebuilt=[task_id for task_id in task_ids if any(item.replayed for item in by_task[task_id])],
        )
        before = {task_id: (merge.row["status"], merge.row["failed"]) for task_id, merge in merges.items()}
        for task_id in task_ids:
            merge_task(merges[task_id], by_task[task_id])
        if merges:
            changes = [
                _change(merges[task_id], before[task_id], by_task[task_id], announced.get(task_id, frozenset()))
                for task_id in task_ids
            ]
            await _write(connection, merges, self._outbox, changes)
        await connection.execute(
            notifications.update()
            .where(notifications.c.id.in_([item.id for item in claimed]))
            .values(
                projected_at=datetime.now(UTC),
                projection_error=None,
                next_attempt_at=None,
                projection_failed_at=None,
                replayed=False,
            )
        )
        metrics.PROJECTED.inc(len(claimed))


async def _lock_tasks(
    connection: AsyncConnection, task_ids: list[str], by_task: dict[str, list[Claimed]]
) -> dict[str, TaskMerge]:
    """Create the tasks not seen yet, lock every task of the batch in task-id order, and read their state."""
    first = [by_task[task_id][0] for task_id in task_ids]
    skeletons = [starting_row(item.projection, item.received_at) for item in first if item.projection]
    await connection.execute(insert_skipping_duplicates(connection.dialect.name, tasks, "task_id"), skeletons)
    locked = await connection.execute(
        sa.select(tasks).where(tasks.c.task_id.in_(task_ids)).order_by(tasks.c.task_id).with_for_update()
    )
    merges = {row.task_id: TaskMerge(dict(row._mapping), {}) for row in locked}
    existing = await connection.execute(
        sa.select(
            subtasks.c.id,
            subtasks.c.task_id,
            subtasks.c.state_key,
            subtasks.c.status,
            subtasks.c.err_code,
            subtasks.c.err_code_ext,
        ).where(subtasks.c.task_id.in_(task_ids))
    )
    for row in existing:
        merges[row.task_id].stored_subtasks[row.id] = StoredSubtask(
            row.state_key, row.status, row.err_code, row.err_code_ext
        )
    return merges


def _change(merge: TaskMerge, before: tuple[str, bool], items: list[Claimed], announced: frozenset[str]) -> TaskChange:
    """What the batch did to one task, for its outbox events (a live task's MPS type: its latest NotificationType).

    A batch of nothing but replayed notifications (``reproject`` rebuilding the task) is a rebuild, not news.
    """
    row, latest = merge.row, items[-1]
    mps_type = row["event_type"] or (latest.projection.notification_type if latest.projection else None)
    after = (row["status"], row["failed"])
    return TaskChange(
        row["task_id"],
        row["kind"],
        mps_type,
        before,
        after,
        row["event_sequence"],
        latest.id,
        rebuild=all(item.replayed for item in items),
        announced=announced,
    )


async def _write(
    connection: AsyncConnection, merges: dict[str, TaskMerge], outbox: Outbox, changes: list[TaskChange]
) -> None:
    """The merged tasks, their new and replaced subtasks (a replaced one's outputs and segments go), and
    the outputs and segments of every subtask state the batch wrote; then the task events the
    changes owe the outbox (with their sequence counted in the same UPDATE), each carrying the task
    as written."""
    for task_id, sequence in outbox.sequences(changes).items():
        merges[task_id].row["event_sequence"] = sequence
    task_rows = [{**rows.task_values(merge.row), "task_id": task_id} for task_id, merge in merges.items()]
    await overwrite_many(connection, tasks, "task_id", task_rows)
    new = [rows.subtask_row(task_id, win) for task_id, m in merges.items() for win in m.new_subtasks.values()]
    replaced = [rows.subtask_row(task_id, win) for task_id, m in merges.items() for win in m.replaced_subtasks.values()]
    await insert_many(connection, subtasks, new)
    if replaced:
        await overwrite_many(connection, subtasks, "id", replaced)
        stale = [row["id"] for row in replaced]
        await connection.execute(outputs.delete().where(outputs.c.subtask_id.in_(stale)))
        await connection.execute(segments.delete().where(segments.c.subtask_id.in_(stale)))
    producers = [(task_id, win) for task_id, merge in merges.items() for win in merge.producers()]
    await insert_many(
        connection, outputs, [row for task_id, win in producers for row in rows.output_rows(task_id, win)]
    )
    await insert_many(
        connection, segments, [row for task_id, win in producers for row in rows.segment_rows(task_id, win)]
    )
    await outbox.task_events(connection, changes)


async def _load(connection: AsyncConnection, ids: list[int]) -> list[Claimed]:
    loaded = await connection.execute(
        sa.select(*CLAIMED_COLUMNS).where(notifications.c.id.in_(ids)).order_by(notifications.c.id)
    )
    return [
        Claimed(
            row.id,
            row.received_at,
            row.dedupe_key,
            row.body,
            Provenance(row.id, row.received_at, row.signature, row.confirmation),
            replayed=row.replayed,
        )
        for row in loaded
    ]


CLAIMED_COLUMNS = (
    notifications.c.id,
    notifications.c.received_at,
    notifications.c.dedupe_key,
    notifications.c.body,
    notifications.c.signature,
    notifications.c.confirmation,
    notifications.c.replayed,
)


def _due() -> tuple[sa.ColumnElement[bool], ...]:
    """Journal rows waiting for projection: not projected, not parked, not in a failure's back-off."""
    now = datetime.now(UTC)
    return (
        notifications.c.projected_at.is_(None),
        notifications.c.projection_failed_at.is_(None),
        sa.or_(notifications.c.next_attempt_at.is_(None), notifications.c.next_attempt_at <= now),
    )


def _fresh() -> list[sa.ColumnElement[bool]]:
    return [notifications.c.projection_attempts == 0]


async def _probe(engine: AsyncEngine, error: BaseException) -> None:
    """Raise ``DatabaseAway`` unless the database takes a write now (then ``error`` was the notification's)."""
    if reason := await database_fault(engine, error):
        raise DatabaseAway(reason) from error


async def projection_lag(engine: AsyncEngine) -> float:
    """Seconds since the oldest notification still waiting to be projected arrived (0 when none).

    Parked notifications are not waiting: they are counted apart (``projection_health``).
    """
    async with engine.connect() as connection:
        oldest: datetime | None = (
            await connection.execute(
                sa.select(notifications.c.received_at)
                .where(notifications.c.projected_at.is_(None), notifications.c.projection_failed_at.is_(None))
                .order_by(notifications.c.id)
                .limit(1)
            )
        ).scalar()
    if oldest is None:
        return 0.0
    return max((datetime.now(UTC) - oldest).total_seconds(), 0.0)


async def projection_health(engine: AsyncEngine) -> dict[str, Any]:
    """Lag and parked failures, for ``/readyz`` (and the gauges)."""
    lag = await projection_lag(engine)
    async with engine.connect() as connection:
        failed = (
            await connection.execute(
                sa.select(sa.func.count())
                .select_from(notifications)
                .where(notifications.c.projected_at.is_(None), notifications.c.projection_failed_at.is_not(None))
            )
        ).scalar_one()
    metrics.PROJECTION_LAG_SECONDS.set(lag)
    metrics.PROJECTIONS_FAILED.set(failed)
    return {"lag_seconds": round(lag, 3), "failed": failed}
