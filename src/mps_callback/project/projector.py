"""The projector: journal rows -> tasks, subtasks, outputs, segments, batch by batch.

Any number of projectors may run (inside ``serve`` and as ``mps-callback worker``): each
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
import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mps_callback import metrics
from mps_callback.project.model import SubtaskProjection, TaskProjection, subtask_failed
from mps_callback.project.parse import parse
from mps_callback.project.rank import Provenance, clamp_progress, session_key, subtask_key, task_key
from mps_callback.storage import OutputUrls
from mps_callback.store.engine import for_writing
from mps_callback.store.errors import database_fault, describe
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
INT32 = 2**31 - 1
INT64 = 2**63 - 1


class DatabaseAway(Exception):
    """The database does not take writes: nothing is held against any notification."""


@dataclass(slots=True)
class Claimed:
    id: int
    received_at: datetime
    dedupe_key: str
    body: dict[str, Any]
    provenance: Provenance
    projection: TaskProjection | None = None


@dataclass(slots=True)
class TaskMerge:
    """One task's state while a batch is merged into it."""

    row: dict[str, Any]
    subtask_states: dict[str, dict[str, Any]]  # subtask id -> {state_key, status, mode}
    new_subtasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    replaced_subtasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    children: dict[str, tuple[SubtaskProjection, Claimed]] = field(default_factory=dict)  # snapshot winners
    appended: list[tuple[str, SubtaskProjection, Claimed]] = field(default_factory=list)
    #: Where the batch will leave the task, known before any of it is merged (so that whether a
    #: notification came after the finish never depends on how notifications were batched).
    finished_at: datetime | None = None
    winner: str = ""
    live: bool = False

    def settle(self, items: list[Claimed]) -> None:
        """Work out the task's finish and winning state over the stored row and the whole batch."""
        row = self.row
        finishes = [item.received_at for item in items if item.projection and item.projection.status == "FINISH"]
        self.finished_at = min([*finishes, *([row["finished_at"]] if row["finished_at"] else [])], default=None)
        keyed = [(task_key(item.projection, item.provenance), item) for item in items if item.projection]
        best_key, best = max(keyed, key=lambda pair: pair[0])
        if best_key > row["state_key"]:
            self.winner, self.live = best_key, best.projection.kind == "live"  # type: ignore[union-attr]
        else:
            self.winner, self.live = row["state_key"], row["kind"] == "live"


class Projector:
    def __init__(
        self,
        engine: AsyncEngine,
        urls: OutputUrls | None = None,
        batch_size: int = BATCH_SIZE,
        max_attempts: int = MAX_ATTEMPTS,
    ):
        self._engine = for_writing(engine)
        self._max_attempts = max_attempts
        self._urls = urls or OutputUrls()
        self._batch_size = batch_size

    async def run_once(self) -> int:
        """Project one batch of new notifications and the failed ones due again; return how many were taken.

        Raises ``DatabaseAway`` when the database does not take writes.
        """
        return await self._fresh_batch() + await self._due_retries()

    async def drain(self, progress: Callable[[int], None] | None = None) -> int:
        """Project until nothing is pending (or only failures waiting for their retry time)."""
        total = 0
        while count := await self.run_once():
            total += count
            if progress:
                progress(count)
        return total

    async def run_forever(self, idle_seconds: float = 0.2) -> None:
        """Project batch after batch; when nothing is pending, look again after ``idle_seconds``.

        While the database is away the wait doubles up to ``MAX_OUTAGE_WAIT_SECONDS``, with
        one log line when the outage starts and one when it ends.
        """
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

    # ---------------------------------------------------------------- merging

    async def _project(self, connection: AsyncConnection, claimed: list[Claimed]) -> None:
        for item in claimed:
            item.projection = parse(item.body, self._urls)
        by_task: dict[str, list[Claimed]] = defaultdict(list)
        for item in claimed:
            if item.projection is not None:  # None: a Tencent VOD event, journal only, nothing to project
                by_task[item.projection.task_id].append(item)
        task_ids = sorted(by_task)
        merges = await self._load(connection, task_ids, by_task) if task_ids else {}
        for task_id in task_ids:
            merge = merges[task_id]
            merge.settle(by_task[task_id])
            for item in sorted(by_task[task_id], key=lambda c: task_key(c.projection, c.provenance)):  # type: ignore[arg-type]
                _merge_notification(merge, item)
            merge.row["failed"] = _failed(merge)
        if merges:
            await self._write(connection, merges)
        await connection.execute(
            notifications.update()
            .where(notifications.c.id.in_([item.id for item in claimed]))
            .values(
                projected_at=datetime.now(UTC),
                projection_error=None,
                next_attempt_at=None,
                projection_failed_at=None,
            )
        )
        metrics.PROJECTED.inc(len(claimed))

    async def _load(
        self, connection: AsyncConnection, task_ids: list[str], by_task: dict[str, list[Claimed]]
    ) -> dict[str, TaskMerge]:
        skeletons = [_skeleton(by_task[task_id][0]) for task_id in task_ids]
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
                subtasks.c.mode,
                subtasks.c.err_code,
                subtasks.c.err_code_ext,
            ).where(subtasks.c.task_id.in_(task_ids))
        )
        for row in existing:
            merges[row.task_id].subtask_states[row.id] = {
                "state_key": row.state_key,
                "status": row.status,
                "err_code": row.err_code,
                "err_code_ext": row.err_code_ext,
            }
        return merges

    async def _write(self, connection: AsyncConnection, merges: dict[str, TaskMerge]) -> None:
        task_rows = [merge.row for merge in merges.values()]
        await connection.execute(
            tasks.update().where(tasks.c.task_id == sa.bindparam("b_task_id")),
            [{**_task_values(row), "b_task_id": row["task_id"]} for row in task_rows],
        )
        new_rows = [row for merge in merges.values() for row in merge.new_subtasks.values()]
        replaced = [row for merge in merges.values() for row in merge.replaced_subtasks.values()]
        if new_rows:
            await connection.execute(subtasks.insert(), new_rows)
        if replaced:
            await connection.execute(
                subtasks.update().where(subtasks.c.id == sa.bindparam("b_id")),
                [{**{k: v for k, v in row.items() if k != "id"}, "b_id": row["id"]} for row in replaced],
            )
            stale = [row["id"] for row in replaced]
            await connection.execute(outputs.delete().where(outputs.c.subtask_id.in_(stale)))
            await connection.execute(segments.delete().where(segments.c.subtask_id.in_(stale)))
        output_rows: list[dict[str, Any]] = []
        segment_rows: list[dict[str, Any]] = []
        for merge in merges.values():
            task_id = merge.row["task_id"]
            children = [(sid, sub, item) for sid, (sub, item) in merge.children.items()] + merge.appended
            for subtask_id, sub, item in children:
                output_rows.extend(
                    _output_row(task_id, subtask_id, item.dedupe_key, seq, o) for seq, o in enumerate(sub.outputs)
                )
                segment_rows.extend(
                    _segment_row(task_id, subtask_id, item.dedupe_key, seq, s) for seq, s in enumerate(sub.segments)
                )
        if output_rows:
            await connection.execute(outputs.insert(), output_rows)
        if segment_rows:
            await connection.execute(segments.insert(), segment_rows)


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


def _merge_notification(merge: TaskMerge, item: Claimed) -> None:
    projection = item.projection
    assert projection is not None
    row = merge.row
    row["notification_count"] += 1
    row["first_received_at"] = min(row["first_received_at"], item.received_at)
    row["last_received_at"] = max(row["last_received_at"], item.received_at)
    if projection.status == "FINISH":
        finished = row["finished_at"]
        row["finished_at"] = item.received_at if finished is None else min(finished, item.received_at)
    state = task_key(projection, item.provenance)
    if state > row["state_key"]:
        row.update(
            kind=projection.kind,
            event_type=projection.event_type,
            status=projection.status[:32],
            err_code=_clamp(projection.err_code, INT32),
            message=projection.message,
            input=projection.input,
            input_location=projection.input_location,
            video_name=projection.video_name,
            media_metadata=projection.metadata,
            extra=projection.extra or None,
            state_key=state,
        )
    late = _after_the_finish(merge, item, state)
    session = session_key(projection, item.provenance)
    if session > row["session_key"] and not late:
        row.update(session_id=projection.session_id, session_context=projection.session_context, session_key=session)
    for sub in projection.subtasks:
        if not late:
            _merge_subtask(merge, sub, item)


def _after_the_finish(merge: TaskMerge, item: Claimed, state: str) -> bool:
    """Whether ``item`` came after its file task finished and is not the state that won.

    MPS sends nothing new about a finished file task (a retry is the same body, deduplicated),
    so such a notification may only be a replay with a captured Timestamp/Sign: it must not
    add, replace or fail subtasks, nor fill in the session. A live task keeps taking results
    and its session: MPS may deliver the last of them after ProcessEof.
    """
    finished = merge.finished_at
    return not merge.live and finished is not None and item.received_at > finished and state != merge.winner


def _merge_subtask(merge: TaskMerge, sub: SubtaskProjection, item: Claimed) -> None:
    task_id = merge.row["task_id"]
    subtask_id = hashlib.blake2b(f"{task_id}\0{sub.key}".encode(), digest_size=16).hexdigest()
    known = merge.subtask_states.get(subtask_id)
    if sub.mode == "append":
        if known is None and subtask_id not in merge.new_subtasks:
            merge.new_subtasks[subtask_id] = _subtask_row(subtask_id, task_id, sub, "append", item.id)
        merge.appended.append((subtask_id, sub, item))
        return
    state = subtask_key(sub, item.provenance)
    current = merge.new_subtasks.get(subtask_id) or merge.replaced_subtasks.get(subtask_id) or known
    if current is not None and state <= current["state_key"]:
        return
    row = _subtask_row(subtask_id, task_id, sub, state, item.id)
    if known is None:
        merge.new_subtasks[subtask_id] = row
    else:
        merge.replaced_subtasks[subtask_id] = row
    merge.children[subtask_id] = (sub, item)


def _failed(merge: TaskMerge) -> bool:
    """The task has an ErrCode, or one of its subtasks (as it now stands) failed: ``subtask_failed``."""
    states = {**merge.subtask_states, **merge.new_subtasks, **merge.replaced_subtasks}
    return merge.row["err_code"] not in (None, 0) or any(
        subtask_failed(state["status"], state["err_code"], state["err_code_ext"]) for state in states.values()
    )


# ---------------------------------------------------------------- rows


def _skeleton(item: Claimed) -> dict[str, Any]:
    """The row a task starts from: every merge wins over it."""
    projection = item.projection
    assert projection is not None
    return {
        "task_id": projection.task_id,
        "kind": projection.kind,
        "status": "PROCESSING",
        "failed": False,
        "first_received_at": item.received_at,
        "last_received_at": item.received_at,
        "notification_count": 0,
        "state_key": "",
        "session_key": "",
    }


def _task_values(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key != "task_id"}


def _subtask_row(
    subtask_id: str, task_id: str, sub: SubtaskProjection, state: str, notification_id: int
) -> dict[str, Any]:
    return {
        "id": subtask_id,
        "task_id": task_id,
        "key": sub.key[:512],
        "group_name": sub.group[:64],
        "family": sub.family[:128],
        "type": _clip(sub.type, 128),
        "mode": sub.mode,
        "status": _clip(sub.status, 32),
        "err_code": _clamp(sub.err_code, INT32),
        "err_code_ext": _clip(sub.err_code_ext, 255),
        "message": sub.message,
        "progress": clamp_progress(_int(sub.progress, INT32)),
        "definition": _int(sub.definition, INT64),
        "begin_process_time": _clip(sub.begin_process_time, 64),
        "finish_time": _clip(sub.finish_time, 64),
        "input": sub.input,
        "output": sub.output,
        "state_key": state,
        "notification_id": notification_id,
    }


def _output_row(task_id: str, subtask_id: str, source: str, seq: int, item: Any) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "subtask_id": subtask_id,
        "source": source,
        "seq": seq,
        "field": item.field,
        "kind": item.kind,
        "storage": item.storage,
        "bucket": _clip(item.bucket, 255),
        "region": _clip(item.region, 64),
        "path": item.path,
        "url": item.url,
        "file_id": _clip(item.file_id, 128),
        "role": item.role,
        "priority": item.priority,
    }


def _segment_row(task_id: str, subtask_id: str, source: str, seq: int, item: Any) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "subtask_id": subtask_id,
        "source": source,
        "seq": seq,
        "kind": item.kind[:64],
        "start_s": item.start,
        "end_s": item.end,
        "text": item.text,
        "translation": item.translation,
        "title": item.title,
        "summary": item.summary,
        "label": item.label,
        "confidence": item.confidence,
        "keywords": item.keywords,
        "url": item.url,
        "extra": item.extra or None,
    }


def _clip(value: Any, length: int) -> str | None:
    """Bounded columns get bounded values: MPS's own strings are short, a hostile one is cut, not fatal."""
    return None if value is None else str(value)[:length]


def _clamp(value: Any, limit: int) -> int | None:
    """An error code kept within the column: a hostile 2**40 stays non-zero (still a failure), not NULL."""
    return min(max(value, -limit - 1), limit) if isinstance(value, int) and not isinstance(value, bool) else None


def _int(value: Any, limit: int) -> int | None:
    return value if isinstance(value, int) and -limit - 1 <= value <= limit else None


async def projection_lag(engine: AsyncEngine) -> float:
    """Seconds since the oldest notification still waiting to be projected arrived (0 when none).

    Parked notifications are not waiting: they are counted apart (``projection_health``).
    """
    async with engine.connect() as connection:
        oldest = (
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


async def retry_failed(engine: AsyncEngine) -> int:
    """Make parked notifications due again (``reproject --failed``); return how many."""
    async with for_writing(engine).begin() as connection:
        result = await connection.execute(
            notifications.update()
            .where(notifications.c.projected_at.is_(None), notifications.c.projection_failed_at.is_not(None))
            .values(projection_failed_at=None, projection_attempts=0, next_attempt_at=None)
        )
        return int(result.rowcount)


async def reset_projections(engine: AsyncEngine) -> int:
    """Forget every projection and mark the whole journal pending; return its size."""
    async with for_writing(engine).begin() as connection:
        for table in (segments, outputs, subtasks, tasks):
            await connection.execute(table.delete())
        await connection.execute(
            notifications.update().values(
                projected_at=None,
                projection_error=None,
                projection_attempts=0,
                next_attempt_at=None,
                projection_failed_at=None,
            )
        )
        return (await connection.execute(sa.select(sa.func.count()).select_from(notifications))).scalar_one()
