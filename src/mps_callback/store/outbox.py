"""The outbox: the ``deliveries`` rows an event owes its sinks, written in the transaction that caused it.

The journal writes ``notification.received`` for each notification it has just taken in; the
projector writes ``task.updated``, ``task.finished`` and ``task.failed`` as it changes a task.
Both commit the rows with their own, so an event is never lost (the cause committed) and never
invented (the cause rolled back). The forwarder (``forward/forwarder.py``) delivers them.

The journal and the projector must not know the forward layer (its sinks and their clients),
so they are handed an `Outbox`: which sink wants which events, built by the wiring from
``MPS_FORWARD_CONFIG``. The empty one (`NO_OUTBOX`, the default) writes nothing and costs
nothing: without sinks, nothing changes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from mps_callback.store.tables import deliveries, outputs, segments, subtasks, tasks

NOTIFICATION_RECEIVED: Final = "notification.received"
TASK_UPDATED: Final = "task.updated"
TASK_FINISHED: Final = "task.finished"
TASK_FAILED: Final = "task.failed"
EventName = Literal["notification.received", "task.updated", "task.finished", "task.failed"]
#: Every event type, in the order a task lives them; a sink's ``events`` filter picks from these.
EVENT_TYPES: tuple[EventName, ...] = (NOTIFICATION_RECEIVED, TASK_UPDATED, TASK_FINISHED, TASK_FAILED)


@dataclass(frozen=True, slots=True)
class Subscription:
    """One sink's filters, as ``forward.config.SinkConfig.wants`` applies them (``mps_types`` empty: any)."""

    sink: str
    events: frozenset[str]
    kinds: frozenset[str]
    mps_types: frozenset[str] = frozenset()
    #: Seconds before the first attempt (the retry schedule's first entry).
    first_delay: float = 0.0

    def wants(self, event: str, kind: str | None, mps_type: str | None) -> bool:
        """An event without a kind passes the kinds filter; one without an MPS type only an open ``mps_types``."""
        return (
            event in self.events
            and (kind is None or kind in self.kinds)
            and (not self.mps_types or mps_type in self.mps_types)
        )


@dataclass(frozen=True, slots=True)
class TaskChange:
    """What one projector transaction did to one task: its state before and after, and what caused it."""

    task_id: str
    kind: str
    mps_type: str | None
    before: tuple[str, bool]  # (status, failed) as stored before the batch
    after: tuple[str, bool]
    sequence: int  # the task's event_sequence before the batch
    notification_id: int  # the latest notification of the batch for this task
    #: Only replayed notifications (``reproject`` rebuilding the task): what they say was announced already.
    rebuild: bool = False
    #: ``task.finished`` / ``task.failed`` already owed to the sinks for this task (a rebuilt one's history).
    announced: frozenset[str] = frozenset()

    def events(self) -> list[str]:
        """``task.updated``, then ``task.finished`` / ``task.failed`` when the task just got there and they were
        not announced before; nothing for a rebuild."""
        if self.rebuild:
            return []
        return [TASK_UPDATED] + [
            name
            for name, reached in _REACHED.items()
            if reached(self.after) and not reached(self.before) and name not in self.announced
        ]


#: Event -> whether a (status, failed) state is there: ``task.finished`` is FINISH and not failed.
_REACHED: dict[str, Callable[[tuple[str, bool]], bool]] = {
    TASK_FINISHED: lambda state: state[0] == "FINISH" and not state[1],
    TASK_FAILED: lambda state: state[1],
}


@dataclass(frozen=True)
class Outbox:
    """The configured sinks' subscriptions; empty: no sinks, no rows."""

    subscriptions: tuple[Subscription, ...] = field(default=())

    def __bool__(self) -> bool:
        return bool(self.subscriptions)

    def wanting(self, event: str, kind: str | None, mps_type: str | None) -> list[Subscription]:
        return [subscription for subscription in self.subscriptions if subscription.wants(event, kind, mps_type)]

    async def notifications_received(self, connection: AsyncConnection, journaled: Iterable[Mapping[str, Any]]) -> None:
        """``notification.received`` for each journal row just written (``id`` and the row's columns).

        Its data stays NULL: the forwarder reads the immutable journal row when it delivers, so the
        intake's hot path writes one short row per sink, not the body again.
        """
        if not self:
            return
        now = datetime.now(UTC)
        rows = []
        for row in journaled:
            mps_type = row.get("event_type") or row.get("notification_type")
            kind = row.get("kind")
            rows += delivery_rows(
                self.wanting(NOTIFICATION_RECEIVED, kind, mps_type),
                now,
                event=NOTIFICATION_RECEIVED,
                task_id=row.get("task_id"),
                kind=kind,
                mps_type=mps_type,
                sequence=row["id"],
                notification_id=row["id"],
                data=None,
            )
        await insert_deliveries(connection, rows)

    async def resume(
        self, connection: AsyncConnection, task_rows: Mapping[str, dict[str, Any]], rebuilt: Iterable[str] = ()
    ) -> dict[str, frozenset[str]]:
        """What a task row that starts counting again (new, or ``rebuilt`` by ``reproject``) already announced.

        The row gets the last sequence its events carried, so a consumer that drops updates older
        than the one it holds never sees the count go back; the answer maps each such task to the
        ``task.finished`` / ``task.failed`` it was owed already, so they are not owed twice. A new
        task has no history: one indexed look-up per batch that creates or rebuilds tasks.
        """
        fresh = sorted({task_id for task_id, row in task_rows.items() if not row["event_sequence"]} | set(rebuilt))
        if not self or not fresh:
            return {}
        sent = await connection.execute(
            sa.select(deliveries.c.task_id, deliveries.c.event, sa.func.max(deliveries.c.sequence))
            .where(deliveries.c.task_id.in_(fresh), deliveries.c.event != NOTIFICATION_RECEIVED)
            .group_by(deliveries.c.task_id, deliveries.c.event)
        )
        announced: dict[str, set[str]] = {}
        for task_id, event, last in sent:
            row = task_rows[task_id]
            row["event_sequence"] = max(row["event_sequence"], int(last))
            announced.setdefault(task_id, set()).update({event} & set(_REACHED))
        return {task_id: frozenset(events) for task_id, events in announced.items()}

    def sequences(self, changes: Sequence[TaskChange]) -> dict[str, int]:
        """Each changed task's event_sequence after this transaction's events (for the tasks UPDATE)."""
        return {change.task_id: change.sequence + len(change.events()) for change in changes} if self else {}

    async def task_events(self, connection: AsyncConnection, changes: Sequence[TaskChange]) -> None:
        """The ``task.*`` events of ``changes``, each carrying the task as it now stands (same transaction)."""
        if not self:
            return
        now = datetime.now(UTC)
        wanted = [
            (change, sequence, event, subscriptions)
            for change in changes
            for sequence, event in enumerate(change.events(), start=change.sequence + 1)
            if (subscriptions := self.wanting(event, change.kind, change.mps_type))
        ]
        if not wanted:
            return
        snapshots = await task_snapshots(connection, {change.task_id: change.mps_type for change, *_ in wanted})
        rows = []
        for change, sequence, event, subscriptions in wanted:
            rows += delivery_rows(
                subscriptions,
                now,
                event=event,
                task_id=change.task_id,
                kind=change.kind,
                mps_type=change.mps_type,
                sequence=sequence,
                notification_id=change.notification_id,
                data=snapshots.get(change.task_id),
            )
        await insert_deliveries(connection, rows)


NO_OUTBOX = Outbox()


def new_event_id() -> str:
    """``evt_`` and 32 hex digits: the id every sink carries, the same for every sink of one event."""
    return "evt_" + uuid.uuid4().hex


def delivery_rows(subscriptions: list[Subscription], now: datetime, **event: Any) -> list[dict[str, Any]]:
    event_id = new_event_id()
    return [
        {
            **event,
            "event_id": event_id,
            "sink": subscription.sink,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now + timedelta(seconds=subscription.first_delay),
            "created_at": now,
        }
        for subscription in subscriptions
    ]


async def insert_deliveries(connection: AsyncConnection, rows: list[dict[str, Any]]) -> None:
    if rows:
        await connection.execute(deliveries.insert(), rows)


# ---------------------------------------------------------------- the task as GET /v1/tasks/{task_id} shows it

#: The task's columns ``GET /v1/tasks/{task_id}`` shows (api/schemas.py TaskDetail), ``type`` aside.
TASK_FIELDS = (
    "task_id",
    "kind",
    "event_type",
    "status",
    "failed",
    "err_code",
    "message",
    "video_name",
    "input_location",
    "session_id",
    "session_context",
    "first_received_at",
    "last_received_at",
    "finished_at",
    "notification_count",
    "input",
    "media_metadata",
    "extra",
)
SUBTASK_FIELDS = (
    "id",
    "key",
    "family",
    "type",
    "mode",
    "status",
    "err_code",
    "err_code_ext",
    "message",
    "progress",
    "definition",
    "begin_process_time",
    "finish_time",
    "input",
    "output",
)
OUTPUT_FIELDS = ("subtask_id", "field", "kind", "storage", "bucket", "region", "path", "url", "file_id", "role")


async def task_snapshots(connection: AsyncConnection, types: Mapping[str, str | None]) -> dict[str, dict[str, Any]]:
    """Each task of ``types`` (task id -> its MPS type) as the query API shows it, in JSON values.

    Read inside the transaction that wrote it, so the event carries exactly the state it announces.
    """
    ids = list(types)
    found = await connection.execute(
        sa.select(*(tasks.c[name] for name in TASK_FIELDS)).where(tasks.c.task_id.in_(ids))
    )
    snapshots = {
        row.task_id: {
            **_json({name: row._mapping[name] for name in TASK_FIELDS}),
            "type": row.event_type if row.kind != "live" else types[row.task_id],
        }
        for row in found
    }
    for task in snapshots.values():
        task.update(subtasks=[], outputs=[], segment_counts={})
    subtask_rows = await connection.execute(
        sa.select(subtasks.c.task_id, subtasks.c.group_name, *(subtasks.c[name] for name in SUBTASK_FIELDS))
        .where(subtasks.c.task_id.in_(ids))
        .order_by(subtasks.c.task_id, subtasks.c.key)
    )
    for row in subtask_rows:
        snapshots[row.task_id]["subtasks"].append(
            {**_json({name: row._mapping[name] for name in SUBTASK_FIELDS}), "group": row.group_name}
        )
    output_rows = await connection.execute(
        sa.select(outputs.c.task_id, subtasks.c.family, *(outputs.c[name] for name in OUTPUT_FIELDS))
        .join(subtasks, subtasks.c.id == outputs.c.subtask_id)
        .where(outputs.c.task_id.in_(ids))
        .order_by(outputs.c.id)
    )
    for row in output_rows:
        snapshots[row.task_id]["outputs"].append(
            {**{name: row._mapping[name] for name in OUTPUT_FIELDS}, "subtask": row.family}
        )
    counts = await connection.execute(
        sa.select(segments.c.task_id, segments.c.kind, sa.func.count())
        .where(segments.c.task_id.in_(ids))
        .group_by(segments.c.task_id, segments.c.kind)
    )
    for task_id, kind, count in counts:
        snapshots[task_id]["segment_counts"][kind] = count
    return snapshots


def _json(values: Mapping[str, Any]) -> dict[str, Any]:
    """Datetimes as RFC 3339 in UTC with a ``Z`` (how the API writes them); everything else as it is."""
    return {key: rfc3339(value) if isinstance(value, datetime) else value for key, value in values.items()}


def rfc3339(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")
