"""What an operator does with the outbox: see where deliveries stand, make them due again, catch a sink up.

Shared by the query API (``/v1/deliveries``), the command line (``mps-callback deliveries``),
``/readyz`` and the metrics job, so each asks the same question the same way. Rows name their
sink only: a sink's URL and secret live in ``MPS_FORWARD_CONFIG`` and never reach these tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mps_callback import metrics
from mps_callback.store.outbox import (
    NOTIFICATION_RECEIVED,
    TASK_FAILED,
    TASK_FINISHED,
    TASK_UPDATED,
    Subscription,
    delivery_rows,
    insert_deliveries,
    task_snapshots,
)
from mps_callback.store.tables import deliveries, notifications, tasks

#: A retry makes these due now; a delivered one stays delivered (its receiver has it: a replay
#: would be a second delivery the operator did not mean, and the event id would not change).
RETRYABLE = ("pending", "dead")


@dataclass(frozen=True, slots=True)
class Selection:
    """Which deliveries a list or a retry is about; None: any."""

    sink: str | None = None
    status: str | None = None
    task_id: str | None = None
    event: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    ids: Sequence[int] = ()

    def where(self) -> list[sa.ColumnElement[bool]]:
        clauses: list[sa.ColumnElement[bool]] = []
        for column, value in (
            (deliveries.c.sink, self.sink),
            (deliveries.c.status, self.status),
            (deliveries.c.task_id, self.task_id),
            (deliveries.c.event, self.event),
        ):
            if value is not None:
                clauses.append(column == value)
        if self.since is not None:
            clauses.append(deliveries.c.created_at >= self.since)
        if self.until is not None:
            clauses.append(deliveries.c.created_at < self.until)
        if self.ids:
            clauses.append(deliveries.c.id.in_(list(self.ids)))
        return clauses


async def retry(connection: AsyncConnection, selection: Selection) -> int:
    """Make the selected pending or dead deliveries pending and due now (attempts kept); how many."""
    result = await connection.execute(
        deliveries.update()
        .where(*selection.where(), deliveries.c.status.in_(RETRYABLE))
        .values(status="pending", next_attempt_at=datetime.now(UTC))
    )
    return int(result.rowcount)


async def standing(connection: AsyncConnection) -> dict[str, dict[str, Any]]:
    """Per sink: pending deliveries due now (``backlog``), ``dead`` ones, and the oldest pending's age.

    One GROUP BY on (sink, status) over the rows that are not delivered: the status index keeps it cheap.
    """
    now = datetime.now(UTC)
    due = sa.case((deliveries.c.next_attempt_at <= now, 1), else_=0)
    rows = await connection.execute(
        sa.select(
            deliveries.c.sink,
            deliveries.c.status,
            sa.func.count(),
            sa.func.sum(due),
            sa.func.min(deliveries.c.created_at),
        )
        .where(deliveries.c.status.in_(RETRYABLE))
        .group_by(deliveries.c.sink, deliveries.c.status)
    )
    found: dict[str, dict[str, Any]] = {}
    for sink, status, count, due_count, oldest in rows:
        entry = found.setdefault(sink, {"backlog": 0, "dead": 0, "oldest_pending_seconds": 0.0})
        if status == "dead":
            entry["dead"] = int(count)
        else:
            entry["backlog"] = int(due_count or 0)
            entry["oldest_pending_seconds"] = round(max((now - _utc(oldest)).total_seconds(), 0.0), 3)
    return found


async def measure(engine: AsyncEngine, sinks: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """:func:`standing`, also set as the ``mps_deliveries_backlog`` and ``mps_deliveries_dead`` gauges.

    ``sinks`` (the configured ones) get their gauges set to 0 when they owe nothing, so a dead
    count retried away drops to 0 instead of keeping its last figure.
    """
    async with engine.connect() as connection:
        found = await standing(connection)
    for sink in {*sinks, *found}:
        entry = found.get(sink, {})
        metrics.DELIVERIES_BACKLOG.labels(sink).set(entry.get("backlog", 0))
        metrics.DELIVERIES_DEAD.labels(sink).set(entry.get("dead", 0))
    return found


def _utc(instant: datetime) -> datetime:
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)


# ---------------------------------------------------------------- backfill: a sink added later, caught up on request

#: Rows read and written per statement: well under every driver's limit on bound parameters.
BACKFILL_BATCH = 500


def _task_event(status: str, failed: bool) -> str:
    """The event a task's current snapshot is sent as: where it stands now."""
    if failed:
        return TASK_FAILED
    return TASK_FINISHED if status == "FINISH" else TASK_UPDATED


async def backfill(connection: AsyncConnection, subscription: Subscription, since: datetime) -> dict[str, int]:
    """Deliveries for one sink of what happened since ``since``, as its filters want them.

    ``notification.received`` for each journal row received since then, and one ``task.*`` per
    task last heard of since then carrying its current snapshot (``task.failed``, ``task.finished``
    or ``task.updated`` by where it stands). New event ids: they are new deliveries of old facts.
    One transaction (the caller's): a backfill that fails leaves nothing, so it can simply be run again.
    """
    counts = {NOTIFICATION_RECEIVED: 0, "task": 0}
    after = 0
    while batch := (
        await connection.execute(
            sa.select(notifications.c.id, notifications.c.task_id, notifications.c.kind, _MPS_TYPE)
            .where(notifications.c.received_at >= since, notifications.c.id > after)
            .order_by(notifications.c.id)
            .limit(BACKFILL_BATCH)
        )
    ).all():
        after = batch[-1].id
        counts[NOTIFICATION_RECEIVED] += await _owe(
            connection,
            subscription,
            [
                {
                    "event": NOTIFICATION_RECEIVED,
                    "task_id": row.task_id,
                    "kind": row.kind,
                    "mps_type": row.mps_type,
                    "sequence": row.id,
                    "notification_id": row.id,
                    "data": None,
                }
                for row in batch
                if subscription.wants(NOTIFICATION_RECEIVED, row.kind, row.mps_type)
            ],
        )
    after_task = ""
    while (
        task_batch := (
            await connection.execute(
                sa.select(
                    tasks.c.task_id,
                    tasks.c.kind,
                    tasks.c.event_type,
                    tasks.c.status,
                    tasks.c.failed,
                    tasks.c.event_sequence,
                )
                .where(tasks.c.last_received_at >= since, tasks.c.task_id > after_task)
                .order_by(tasks.c.task_id)
                .limit(BACKFILL_BATCH)
            )
        )
        .mappings()
        .all()
    ):
        after_task = task_batch[-1]["task_id"]
        counts["task"] += await _owe_tasks(connection, subscription, task_batch)
    return counts


#: A notification's MPS type: its EventType (vod), else its NotificationType (live).
_MPS_TYPE = sa.func.coalesce(notifications.c.event_type, notifications.c.notification_type).label("mps_type")


async def _owe_tasks(connection: AsyncConnection, subscription: Subscription, batch: Sequence[sa.RowMapping]) -> int:
    """One ``task.*`` per task of ``batch`` the sink wants, carrying its snapshot; how many."""
    latest = await _latest_notifications(connection, [task["task_id"] for task in batch])
    events = []
    for task in batch:
        notification_id, latest_type = latest.get(task["task_id"], (None, None))
        mps_type = task["event_type"] if task["kind"] != "live" else latest_type  # as the projector names it
        events.append(
            {
                "event": _task_event(task["status"], task["failed"]),
                "task_id": task["task_id"],
                "kind": task["kind"],
                "mps_type": mps_type,
                "sequence": task["event_sequence"] or 0,
                "notification_id": notification_id,
            }
        )
    wanted = [event for event in events if subscription.wants(event["event"], event["kind"], event["mps_type"])]
    if not wanted:
        return 0
    snapshots = await task_snapshots(connection, {event["task_id"]: event["mps_type"] for event in wanted})
    for event in wanted:
        event["data"] = snapshots.get(event["task_id"])
    return await _owe(connection, subscription, wanted)


async def _owe(connection: AsyncConnection, subscription: Subscription, events: list[dict[str, Any]]) -> int:
    """A pending delivery to the sink for each of ``events`` (each a new event id); how many."""
    now = datetime.now(UTC)
    rows = [row for event in events for row in delivery_rows([subscription], now, **event)]
    await insert_deliveries(connection, rows)
    return len(rows)


async def _latest_notifications(connection: AsyncConnection, task_ids: list[str]) -> dict[str, tuple[int, str | None]]:
    """Each task's latest journal row: its id (the event's cause) and MPS type (a live task's type)."""
    latest = (
        sa.select(sa.func.max(notifications.c.id))
        .where(notifications.c.task_id.in_(task_ids))
        .group_by(notifications.c.task_id)
        .scalar_subquery()
    )
    rows = await connection.execute(
        sa.select(notifications.c.task_id, notifications.c.id, _MPS_TYPE).where(notifications.c.id.in_(latest))
    )
    return {row.task_id: (row.id, row.mps_type) for row in rows}
