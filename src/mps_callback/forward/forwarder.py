"""The forwarder: due outbox rows (``deliveries``) to their sinks, at least once, with retries.

Any number of forwarders may run (in the background process ``serve`` starts, and as
``mps-callback forward``). A forwarder runs one lane per sink, so a slow or hung sink holds back
only its own deliveries. A lane claims a batch of its sink's due pending deliveries with ``FOR
UPDATE SKIP LOCKED`` (SQLite: ``BEGIN IMMEDIATE``, its one writer) and, in that short
transaction, pushes their ``next_attempt_at`` a lease ahead: no other forwarder takes them while
this one sends. The
sending happens outside any transaction; its outcome is then recorded (an attempt row, and the
delivery delivered, rescheduled or dead). A forwarder killed mid-delivery leaves its claims to
come due again when the lease runs out, so the event is sent again: at least once, never lost.

Retries follow the sink's ``retry_schedule`` (a receiver's ``Retry-After`` when it asks for
longer); after its last entry the delivery is ``dead``. A sink answering `Disable` (a webhook's
410) is stopped for the life of this process, with one log line; its deliveries stay pending
for the operator to fix the receiver or the configuration and restart.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from mps_callback import metrics
from mps_callback.forward.config import MAX_RETRY_DELAY_SECONDS, SinkConfig
from mps_callback.forward.event import Event, EventName, Kind, rfc3339
from mps_callback.forward.sinks import Delivered, Disable, Outcome, Retry, Sink
from mps_callback.store.engine import for_writing
from mps_callback.store.errors import again_after_conflicts, describe
from mps_callback.store.outbox import NOTIFICATION_RECEIVED, Outbox, Subscription
from mps_callback.store.tables import deliveries, delivery_attempts, notifications

log = logging.getLogger(__name__)

#: How long a claimed delivery is kept from other forwarders: well beyond one delivery's timeout.
LEASE_SECONDS = 60.0
BATCH_SIZE = 100
IDLE_SECONDS = 0.5
MAX_OUTAGE_WAIT_SECONDS = 30.0
MAX_ERROR = 512

#: What ``notification.received`` carries: the journal row as ``GET /v1/notifications/{id}`` shows how
#: it arrived (the redacted body, signature verdict, door, envelope), without the projection's
#: state, which changes after the event.
NOTIFICATION_FIELDS = (
    "id",
    "received_at",
    "kind",
    "event_type",
    "notification_type",
    "task_id",
    "session_id",
    "session_context",
    "signature",
    "confirmation",
    "channel",
    "wrapper",
    "message_id",
    "body",
    "delivery",
)
_HTTP_STATUS = re.compile(r"^HTTP (\d{3})\b")


def outbox_of(sinks: Sequence[SinkConfig]) -> Outbox:
    """The subscriptions the journal and projector write rows for: each sink's filters and first delay."""
    return Outbox(
        tuple(
            Subscription(
                sink.name,
                frozenset(sink.events),
                frozenset(sink.kinds),
                frozenset(sink.event_types),
                sink.retry_schedule[0],
            )
            for sink in sinks
        )
    )


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery this forwarder holds the lease on."""

    id: int
    sink: str
    attempts: int
    event: Event
    notification_id: int | None


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt, ready to record: its ``delivery_attempts`` row and the delivery's new values."""

    item: Claimed
    outcome: Outcome | None
    row: dict[str, Any]
    values: dict[str, Any]


class Forwarder:
    def __init__(
        self,
        engine: AsyncEngine,
        sinks: Sequence[SinkConfig],
        *,
        lease_seconds: float = LEASE_SECONDS,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self._engine = for_writing(engine)
        self._configs = {sink.name: sink for sink in sinks}
        self._sinks: dict[str, Sink] = {sink.name: sink.open() for sink in sinks}
        self._disabled: set[str] = set()
        self._lease = timedelta(seconds=lease_seconds)
        self._batch_size = batch_size

    async def close(self) -> None:
        for sink in self._sinks.values():
            await sink.close()

    async def run_once(self) -> int:
        """One batch for each sink, the sinks side by side; how many deliveries were taken."""
        return sum(await asyncio.gather(*(self._batch(name) for name in self._sinks)))

    async def drain(self) -> int:
        """Send until nothing is due (failures wait for their next attempt)."""
        total = 0
        while count := await self.run_once():
            total += count
        return total

    async def run_forever(self, idle_seconds: float = IDLE_SECONDS) -> None:
        """A lane per sink, until cancelled: a sink that hangs or fails holds back only its own deliveries."""
        async with asyncio.TaskGroup() as lanes:
            for name in self._sinks:
                lanes.create_task(self._lane(name, idle_seconds), name=f"forward to {name}")

    async def _lane(self, sink: str, idle_seconds: float) -> None:
        """Batch after batch for ``sink``; while the database is away, wait (doubling) with one log line each
        way. A disabled sink's lane idles until the process stops (the others go on)."""
        wait, away = idle_seconds, False
        while True:
            if sink in self._disabled:
                await asyncio.Event().wait()  # never set: only cancellation ends it
            try:
                taken = await self._batch(sink)
            except Exception as error:
                if not away:
                    log.warning("forwarder waits for the database", extra={"sink": sink, "error": describe(error)})
                away, wait = True, min(max(wait * 2, 1.0), MAX_OUTAGE_WAIT_SECONDS)
                await asyncio.sleep(wait)
                continue
            if away:
                log.info("database back; forwarding again", extra={"sink": sink})
            away, wait = False, idle_seconds
            if not taken:
                await asyncio.sleep(idle_seconds)

    async def _batch(self, sink: str) -> int:
        """Claim a batch of ``sink``'s due deliveries, send them concurrently, record every outcome; how many."""
        claimed = await self._claim(sink)
        if claimed:
            await self._record(await asyncio.gather(*(self._deliver(item) for item in claimed)))
        return len(claimed)

    # ---------------------------------------------------------------- claiming

    async def _claim(self, sink: str) -> list[Claimed]:
        if sink in self._disabled:
            return []
        return await again_after_conflicts(lambda: self._claim_once(sink))  # two claims can deadlock on MariaDB

    async def _claim_once(self, sink: str) -> list[Claimed]:
        now = datetime.now(UTC)
        async with self._engine.begin() as connection:
            rows = (
                await connection.execute(
                    sa.select(deliveries)
                    .where(
                        deliveries.c.status == "pending",
                        deliveries.c.next_attempt_at <= now,
                        deliveries.c.sink == sink,
                    )
                    .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return []
            await connection.execute(
                deliveries.update()
                .where(deliveries.c.id.in_([row.id for row in rows]))
                .values(next_attempt_at=now + self._lease)
            )
            received = await _journal_rows(connection, [row.notification_id for row in rows if row.data is None])
        return [_claimed(row._mapping, received) for row in rows]

    # ---------------------------------------------------------------- sending and recording

    async def _deliver(self, item: Claimed) -> Attempt:
        if item.event.type == NOTIFICATION_RECEIVED and not item.event.data:
            return self._attempt(item, None, 0, f"notification {item.notification_id} is no longer in the journal")
        started = time.perf_counter()
        try:
            outcome = await self._sinks[item.sink].deliver(item.event)
        except Exception as error:  # sinks answer with outcomes; should one raise, its batch is recorded all the same
            outcome = Retry(f"{type(error).__name__} raised by sink {item.sink!r}")  # its text may quote a URL
        return self._attempt(item, outcome, int((time.perf_counter() - started) * 1000))

    def _attempt(self, item: Claimed, outcome: Outcome | None, duration_ms: int, gone: str = "") -> Attempt:
        """The attempt row, and where the delivery stands after it (``outcome`` None: it cannot be sent, dead)."""
        now = datetime.now(UTC)
        attempts = item.attempts + (0 if isinstance(outcome, Disable) else 1)
        values: dict[str, Any] = {"attempts": attempts}
        error = gone or (outcome.reason[:MAX_ERROR] if isinstance(outcome, Retry | Disable) else None)
        if isinstance(outcome, Delivered):
            values.update(status="delivered", delivered_at=now, next_attempt_at=now)
        elif isinstance(outcome, Disable):
            values.update(next_attempt_at=now, last_error=error)
            self._disable(item.sink, outcome)
        else:
            values.update(last_error=error, **self._next(item.sink, attempts, outcome, now))
        row = {
            "delivery_id": item.id,
            "attempted_at": now,
            "duration_ms": duration_ms,
            "outcome": outcome.status if outcome is not None else "gone",
            "status_code": _status_code(error),
            "error": error,
        }
        return Attempt(item, outcome, row, values)

    async def _record(self, done: Sequence[Attempt]) -> None:
        """A batch's attempts and outcomes in one transaction: one commit per batch, not one per delivery,
        so forwarding does not take the database's writes from the journal and the projector. If it
        fails, the leases run out and the batch is sent again: at least once, never lost."""
        changes: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for attempt in done:  # rows setting the same columns go in one executemany
            changes[tuple(sorted(attempt.values))].append({**attempt.values, "b_id": attempt.item.id})
        pending_one = deliveries.update().where(
            deliveries.c.id == sa.bindparam("b_id"), deliveries.c.status == "pending"
        )

        async def write() -> None:
            async with self._engine.begin() as connection:
                await connection.execute(delivery_attempts.insert(), [attempt.row for attempt in done])
                for rows in changes.values():
                    await connection.execute(pending_one, rows)

        await again_after_conflicts(write)  # as the claims: a deadlock is run again
        for attempt in done:
            _count(attempt)
            if attempt.values.get("status") == "dead":
                log.warning(
                    "delivery dead: every attempt of its retry schedule failed",
                    extra={
                        "delivery_id": attempt.item.id,
                        "sink": attempt.item.sink,
                        "event_id": attempt.item.event.id,
                        "error": attempt.row["error"],
                    },
                )

    def _next(self, sink: str, attempts: int, outcome: Retry | None, now: datetime) -> dict[str, Any]:
        """After a failed attempt: the next one from the schedule (or later, when the receiver asked), or dead."""
        schedule = self._configs[sink].retry_schedule
        if outcome is None or attempts >= len(schedule):
            return {"status": "dead", "next_attempt_at": now}
        delay = min(max(schedule[attempts], outcome.after_seconds or 0.0), MAX_RETRY_DELAY_SECONDS)
        return {"next_attempt_at": now + timedelta(seconds=delay)}

    def _disable(self, sink: str, outcome: Disable) -> None:
        if sink not in self._disabled:
            self._disabled.add(sink)
            log.error(
                "sink disabled until restart; its deliveries stay pending",
                extra={"sink": sink, "url": self._configs[sink].safe_url, "error": outcome.reason},
            )


def _count(attempt: Attempt) -> None:
    """``mps_deliveries_total{sink,outcome}``, and the lag from the event's creation when it arrived."""
    item, outcome = attempt.item, attempt.outcome
    if isinstance(outcome, Delivered):
        lag = (attempt.row["attempted_at"] - item.event.timestamp).total_seconds()
        metrics.DELIVERY_LAG_SECONDS.labels(item.sink).observe(max(lag, 0.0))
    dead = attempt.values.get("status") == "dead"
    metrics.DELIVERIES.labels(item.sink, "dead" if dead or outcome is None else outcome.status).inc()


async def _journal_rows(connection: Any, ids: list[int | None]) -> dict[int, dict[str, Any]]:
    """The journal rows ``notification.received`` deliveries carry, read when they are sent."""
    wanted = sorted({notification_id for notification_id in ids if notification_id is not None})
    if not wanted:
        return {}
    found = await connection.execute(
        sa.select(*(notifications.c[name] for name in NOTIFICATION_FIELDS)).where(notifications.c.id.in_(wanted))
    )
    # keys by our names: SQLAlchemy's are a str subclass that JSON encoders refuse as keys
    return {row.id: _json({name: row._mapping[name] for name in NOTIFICATION_FIELDS}) for row in found}


def _claimed(row: Any, received: dict[int, dict[str, Any]]) -> Claimed:
    data = row["data"] if row["data"] is not None else received.get(row["notification_id"], {})
    event = Event(
        id=row["event_id"],
        type=cast(EventName, row["event"]),
        timestamp=row["created_at"],
        task_id=row["task_id"],
        sequence=row["sequence"],
        kind=cast(Kind | None, row["kind"]),
        event_type=row["mps_type"],
        data=data,
    )
    return Claimed(row["id"], row["sink"], row["attempts"], event, row["notification_id"])


def _json(values: dict[str, Any]) -> dict[str, Any]:
    return {key: rfc3339(value) if isinstance(value, datetime) else value for key, value in values.items()}


def _status_code(error: str | None) -> int | None:
    """The HTTP status a webhook's reason starts with (``HTTP 503 Service Unavailable``), else None."""
    match = _HTTP_STATUS.match(error or "")
    return int(match.group(1)) if match else None
