"""The projector: journal rows -> tasks, subtasks, outputs, segments, batch by batch.

Any number of projectors may run (inside ``serve`` and as ``mps-callback worker``): each
claims pending journal rows with ``FOR UPDATE SKIP LOCKED`` (SQLite has one writer and
needs none) and locks the task rows it touches in task-id order, so two projectors never
interleave on a task and never deadlock. A batch is one transaction; if it fails, its rows
are retried one by one so that one bad notification is marked with its error, retried
later with back-off, and never holds back the others.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mps_callback import metrics
from mps_callback.project.model import SubtaskProjection, TaskProjection
from mps_callback.project.parse import parse
from mps_callback.project.rank import session_key, subtask_key, task_key
from mps_callback.store.engine import for_writing
from mps_callback.store.tables import notifications, outputs, segments, subtasks, tasks
from mps_callback.store.upsert import insert_skipping_duplicates

log = logging.getLogger(__name__)

BATCH_SIZE = 200
MAX_RETRY_DELAY = timedelta(hours=1)
INT32 = 2**31 - 1
INT64 = 2**63 - 1


@dataclass(slots=True)
class Claimed:
    id: int
    received_at: datetime
    dedupe_key: str
    body: dict[str, Any]
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


class Projector:
    def __init__(self, engine: AsyncEngine, cdn_domains: Mapping[str, str] | None = None, batch_size: int = BATCH_SIZE):
        self._engine = for_writing(engine)
        self._cdn = dict(cdn_domains or {})
        self._batch_size = batch_size

    async def run_once(self) -> int:
        """Project one batch of pending notifications; return how many were taken."""
        try:
            async with self._engine.begin() as connection:
                claimed = await self._claim(connection, None)
                if claimed:
                    await self._project(connection, claimed)
                return len(claimed)
        except Exception as error:  # the batch failed: isolate the notification that made it fail
            log.warning("projection batch failed; retrying one by one", extra={"error": type(error).__name__})
            return await self._one_by_one()

    async def drain(self, progress: Callable[[int], None] | None = None) -> int:
        """Project until nothing is pending (or only failures waiting for their retry time)."""
        total = 0
        while count := await self.run_once():
            total += count
            if progress:
                progress(count)
        return total

    async def run_forever(self, idle_seconds: float = 0.2) -> None:
        """Project batch after batch; when nothing is pending, look again after ``idle_seconds``."""
        while True:
            try:
                if await self.run_once():
                    continue
            except Exception as error:  # the database is away: keep the loop, try again shortly
                log.warning("projector pass failed", extra={"error": f"{type(error).__name__}: {str(error)[:200]}"})
            await asyncio.sleep(idle_seconds)

    # ---------------------------------------------------------------- claiming

    async def _claim(self, connection: AsyncConnection, only_id: int | None) -> list[Claimed]:
        query = (
            sa.select(notifications.c.id, notifications.c.received_at, notifications.c.dedupe_key, notifications.c.body)
            .where(*_due())
            .order_by(notifications.c.id)
            .limit(1 if only_id is not None else self._batch_size)
            .with_for_update(skip_locked=True)
        )
        if only_id is not None:
            query = query.where(notifications.c.id == only_id)
        return [Claimed(row.id, row.received_at, row.dedupe_key, row.body) for row in await connection.execute(query)]

    async def _one_by_one(self) -> int:
        async with self._engine.connect() as connection:
            pending = await connection.execute(
                sa.select(notifications.c.id)
                .where(*_due())
                .order_by(notifications.c.id)
                .limit(self._batch_size)
            )
            ids = [row.id for row in pending]
        for notification_id in ids:
            try:
                async with self._engine.begin() as connection:
                    claimed = await self._claim(connection, notification_id)
                    if claimed:
                        await self._project(connection, claimed)
            except Exception as error:
                await self._mark_failed(notification_id, error)
        return len(ids)

    async def _mark_failed(self, notification_id: int, error: Exception) -> None:
        metrics.PROJECTION_FAILURES.inc()
        log.error("notification failed to project", extra={"notification_id": notification_id,
                                                           "error": f"{type(error).__name__}: {str(error)[:300]}"})
        async with self._engine.begin() as connection:
            attempts = (await connection.execute(
                sa.select(notifications.c.projection_attempts).where(notifications.c.id == notification_id)
            )).scalar_one()
            delay = min(timedelta(seconds=2 ** min(attempts, 12)), MAX_RETRY_DELAY)
            await connection.execute(
                notifications.update()
                .where(notifications.c.id == notification_id)
                .values(
                    projection_error=f"{type(error).__name__}: {error}"[:4000],
                    projection_attempts=attempts + 1,
                    next_attempt_at=datetime.now(timezone.utc) + delay,
                )
            )

    # ---------------------------------------------------------------- merging

    async def _project(self, connection: AsyncConnection, claimed: list[Claimed]) -> None:
        for item in claimed:
            item.projection = parse(item.body, self._cdn)
        by_task: dict[str, list[Claimed]] = defaultdict(list)
        for item in claimed:
            by_task[item.projection.task_id].append(item)  # type: ignore[union-attr]
        task_ids = sorted(by_task)
        merges = await self._load(connection, task_ids, by_task)
        for task_id in task_ids:
            merge = merges[task_id]
            for item in sorted(by_task[task_id], key=lambda c: task_key(c.projection, c.dedupe_key)):  # type: ignore[arg-type]
                _merge_notification(merge, item)
            merge.row["failed"] = _failed(merge)
        await self._write(connection, merges)
        await connection.execute(
            notifications.update()
            .where(notifications.c.id.in_([item.id for item in claimed]))
            .values(projected_at=datetime.now(timezone.utc), projection_error=None, next_attempt_at=None)
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
            sa.select(subtasks.c.id, subtasks.c.task_id, subtasks.c.state_key, subtasks.c.status, subtasks.c.mode)
            .where(subtasks.c.task_id.in_(task_ids))
        )
        for row in existing:
            merges[row.task_id].subtask_states[row.id] = {"state_key": row.state_key, "status": row.status}
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
                output_rows.extend(_output_row(task_id, subtask_id, item.dedupe_key, seq, o) for seq, o in enumerate(sub.outputs))
                segment_rows.extend(_segment_row(task_id, subtask_id, item.dedupe_key, seq, s) for seq, s in enumerate(sub.segments))
        if output_rows:
            await connection.execute(outputs.insert(), output_rows)
        if segment_rows:
            await connection.execute(segments.insert(), segment_rows)


def _due() -> tuple[sa.ColumnElement[bool], ...]:
    """Journal rows waiting for projection: not projected, and not in a failure's back-off."""
    now = datetime.now(timezone.utc)
    return (
        notifications.c.projected_at.is_(None),
        sa.or_(notifications.c.next_attempt_at.is_(None), notifications.c.next_attempt_at <= now),
    )


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
    state = task_key(projection, item.dedupe_key)
    if state > row["state_key"]:
        row.update(
            kind=projection.kind, event_type=projection.event_type,
            status=projection.status[:32], err_code=_int(projection.err_code, INT32), message=projection.message,
            input=projection.input, input_location=projection.input_location, video_name=projection.video_name,
            media_metadata=projection.metadata, extra=projection.extra or None, state_key=state,
        )
    session = session_key(projection, item.dedupe_key)
    if session > row["session_key"]:
        row.update(session_id=projection.session_id, session_context=projection.session_context, session_key=session)
    for sub in projection.subtasks:
        _merge_subtask(merge, sub, item)


def _merge_subtask(merge: TaskMerge, sub: SubtaskProjection, item: Claimed) -> None:
    task_id = merge.row["task_id"]
    subtask_id = hashlib.blake2b(f"{task_id}\0{sub.key}".encode(), digest_size=16).hexdigest()
    known = merge.subtask_states.get(subtask_id)
    if sub.mode == "append":
        if known is None and subtask_id not in merge.new_subtasks:
            merge.new_subtasks[subtask_id] = _subtask_row(subtask_id, task_id, sub, "append", item.id)
        merge.appended.append((subtask_id, sub, item))
        return
    state = subtask_key(sub, item.dedupe_key)
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
    statuses = {sid: state["status"] for sid, state in merge.subtask_states.items()}
    statuses.update({sid: row["status"] for sid, row in merge.new_subtasks.items()})
    statuses.update({sid: row["status"] for sid, row in merge.replaced_subtasks.items()})
    return merge.row["err_code"] not in (None, 0) or "FAIL" in statuses.values()


# ---------------------------------------------------------------- rows


def _skeleton(item: Claimed) -> dict[str, Any]:
    """The row a task starts from: every merge wins over it."""
    projection = item.projection
    assert projection is not None
    return {
        "task_id": projection.task_id, "kind": projection.kind, "status": "PROCESSING", "failed": False,
        "first_received_at": item.received_at, "last_received_at": item.received_at, "notification_count": 0,
        "state_key": "", "session_key": "",
    }


def _task_values(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key != "task_id"}


def _subtask_row(subtask_id: str, task_id: str, sub: SubtaskProjection, state: str, notification_id: int) -> dict[str, Any]:
    return {
        "id": subtask_id, "task_id": task_id, "key": sub.key[:512], "group_name": sub.group[:64],
        "family": sub.family[:128], "type": _clip(sub.type, 128), "mode": sub.mode, "status": _clip(sub.status, 32),
        "err_code": _int(sub.err_code, INT32), "err_code_ext": _clip(sub.err_code_ext, 255), "message": sub.message,
        "progress": _int(sub.progress, INT32), "definition": _int(sub.definition, INT64),
        "begin_process_time": _clip(sub.begin_process_time, 64), "finish_time": _clip(sub.finish_time, 64),
        "input": sub.input, "output": sub.output, "state_key": state, "notification_id": notification_id,
    }


def _output_row(task_id: str, subtask_id: str, source: str, seq: int, item: Any) -> dict[str, Any]:
    return {
        "task_id": task_id, "subtask_id": subtask_id, "source": source, "seq": seq, "field": item.field,
        "kind": item.kind, "storage": item.storage, "bucket": _clip(item.bucket, 255), "region": _clip(item.region, 64),
        "path": item.path, "url": item.url, "file_id": _clip(item.file_id, 128), "role": item.role,
        "priority": item.priority,
    }


def _segment_row(task_id: str, subtask_id: str, source: str, seq: int, item: Any) -> dict[str, Any]:
    return {
        "task_id": task_id, "subtask_id": subtask_id, "source": source, "seq": seq, "kind": item.kind[:64],
        "start_s": item.start, "end_s": item.end, "text": item.text, "translation": item.translation,
        "title": item.title, "summary": item.summary, "label": item.label, "confidence": item.confidence,
        "keywords": item.keywords, "url": item.url, "extra": item.extra or None,
    }


def _clip(value: Any, length: int) -> str | None:
    """Bounded columns get bounded values: MPS's own strings are short, a hostile one is cut, not fatal."""
    return None if value is None else str(value)[:length]


def _int(value: Any, limit: int) -> int | None:
    return value if isinstance(value, int) and -limit - 1 <= value <= limit else None


async def projection_lag(engine: AsyncEngine) -> float:
    """Seconds since the oldest notification still waiting to be projected arrived (0 when none)."""
    async with engine.connect() as connection:
        oldest = (await connection.execute(
            sa.select(sa.func.min(notifications.c.received_at)).where(notifications.c.projected_at.is_(None))
        )).scalar_one()
    if oldest is None:
        return 0.0
    if oldest.tzinfo is None:  # min() bypasses the column type on some drivers
        oldest = oldest.replace(tzinfo=timezone.utc)
    return max((datetime.now(timezone.utc) - oldest).total_seconds(), 0.0)


async def reset_projections(engine: AsyncEngine) -> int:
    """Forget every projection and mark the whole journal pending; return its size."""
    async with for_writing(engine).begin() as connection:
        for table in (segments, outputs, subtasks, tasks):
            await connection.execute(table.delete())
        await connection.execute(
            notifications.update().values(projected_at=None, projection_error=None, projection_attempts=0,
                                          next_attempt_at=None)
        )
        return (await connection.execute(sa.select(sa.func.count()).select_from(notifications))).scalar_one()
