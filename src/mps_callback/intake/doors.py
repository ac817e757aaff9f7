"""The queue doors: TDMQ-CMQ, AWS SQS, and any other transport MPS can put a notification on.

MPS's ``TaskNotifyConfig.NotifyType`` picks how a notification travels: ``URL`` comes in
through ``intake/http.py``; a queue (``TDMQ-CMQ``, the default; ``AWS-SQS``) is pulled here.
Every door hands the same bytes to the same ``Intake.accept`` (verify, redact, journal) and
acknowledges a message to its transport only once the notification is durable (journaled,
a duplicate of a journaled one, or fsynced in the spool). A message the journal could not
take stays in the queue: the transport delivers it again after its visibility timeout, and
the dedupe key makes a redelivery a duplicate, never a second row.

A message whose body can never be accepted (400: not JSON, not a notification, too deep; 413:
too large to keep) is acknowledged with a log line, so it does not come back for ever; one refused for
its signature or expiry is left to the transport (its dead-letter queue), because a wrong
``MPS_NOTIFY_KEYS`` is fixed by the operator and the message is then still there. Its expiry is read
against when the queue took it in (``Delivery.sent_at``): a queue is there for the hours a consumer is
down, and must not hand it a backlog of expired notifications.

A door is a `Queue`: ``receive`` (a long poll returning up to a batch of `Message`),
``acknowledge`` (their handles), ``close``. `DOORS` is the table of doors, each with what
configures it; `pump` runs one receive-accept-acknowledge round.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from mps_callback import metrics
from mps_callback.config import Settings
from mps_callback.errors import JournalUnavailable, Refused
from mps_callback.intake.accept import Accepted, Delivery, Intake

log = logging.getLogger(__name__)

Result = Literal["accepted", "duplicate", "spooled", "refused", "unavailable"]
DURABLE: frozenset[Result] = frozenset({"accepted", "duplicate", "spooled"})
#: Refusals a message never recovers from (400: not a notification we can read; 413: too large to
#: keep): acknowledged, with a log line. The others (401: a signature, an expiry, a task the MPS API
#: does not know; 503: busy) are left for the transport's redelivery and dead-letter queue.
HOPELESS_STATUSES = frozenset({400, 413})


@dataclass(frozen=True, slots=True)
class Taken:
    """What became of one notification at a door."""

    result: Result
    accepted: Accepted | None = None
    refused: Refused | None = None

    @property
    def durable(self) -> bool:
        return self.result in DURABLE

    @property
    def settled(self) -> bool:
        """Whether the message may leave its queue: kept durably, or refused for good."""
        return self.durable or (self.refused is not None and self.refused.status in HOPELESS_STATUSES)


async def take(intake: Intake, raw: bytes, delivery: Delivery) -> Taken:
    """``raw`` through ``intake.accept``, counted in ``mps_notifications_total`` as every door counts it."""
    try:
        accepted = await intake.accept(raw, delivery)
    except Refused as refused:
        metrics.NOTIFICATIONS.labels(*labels(refused.shape), "refused", refused.code).inc()
        return Taken("refused", refused=refused)
    except JournalUnavailable:
        metrics.NOTIFICATIONS.labels("unknown", "none", "unavailable", "storage").inc()
        return Taken("unavailable")
    receipt = accepted.receipt
    result: Result = "spooled" if receipt.spooled else "duplicate" if receipt.duplicate else "accepted"
    metrics.NOTIFICATIONS.labels(*labels(accepted.shape), result, "").inc()
    return Taken(result, accepted=accepted)


def labels(shape: Any) -> tuple[str, str]:
    """The kind and type labels of a recognised notification (``unknown``, ``none`` before recognition)."""
    return ("unknown", "none") if shape is None else (shape.kind, metrics.type_label(shape.type))


def identity(shape: Any) -> dict[str, Any]:
    """What a log line says of the notification: TaskId, kind, type."""
    return {} if shape is None else {"task_id": shape.task_id, "kind": shape.kind, "type": shape.type}


# ---------------------------------------------------------------- queues


@dataclass(frozen=True, slots=True)
class Message:
    """One message a queue handed over: the notification's bytes, how it came, and how to acknowledge it."""

    body: bytes
    delivery: Delivery  # channel = the door's name; headers = the transport's metadata (message id, receive count)
    handle: Any  # what ``acknowledge`` needs (a receipt handle)


class Queue(Protocol):
    """A transport MPS puts notifications on, as a door pulls from it."""

    name: str

    async def receive(self) -> Sequence[Message]:
        """Up to a batch of messages, waiting (a long poll) while there are none; raise on a transport failure."""
        ...

    async def acknowledge(self, handles: Sequence[Any]) -> None:
        """Remove these messages from the queue for good; raise on a transport failure (they come back)."""
        ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class Round:
    """What one `pump` did, by result, and how many it acknowledged."""

    results: dict[str, int] = field(default_factory=dict)
    acknowledged: int = 0


async def pump(queue: Queue, intake: Intake) -> Round:
    """One round: receive, take each message in order, acknowledge those settled (never one not durable).

    A failed acknowledgement leaves the messages to come again: redelivered, they are duplicates.
    """
    done = Round()
    messages = await queue.receive()
    settled: list[Any] = []
    for message in messages:
        started = time.perf_counter()
        taken = await take(intake, message.body, message.delivery)
        done.results[taken.result] = done.results.get(taken.result, 0) + 1
        metrics.DOOR_MESSAGES.labels(queue.name, taken.result).inc()
        if (sent_at := message.delivery.sent_at) is not None:
            metrics.DOOR_LAG_SECONDS.labels(queue.name).set(max((datetime.now(UTC) - sent_at).total_seconds(), 0))
        _log(queue.name, message, taken, started)
        if taken.settled:
            settled.append(message.handle)
    if settled:
        await queue.acknowledge(settled)
        metrics.DOOR_MESSAGES.labels(queue.name, "acknowledged").inc(len(settled))
        done.acknowledged = len(settled)
    return done


def _log(door: str, message: Message, taken: Taken, started: float) -> None:
    shape = taken.accepted.shape if taken.accepted else taken.refused.shape if taken.refused else None
    outcome: dict[str, Any] = {
        "door": door,
        "outcome": taken.result,
        "message_id": message.delivery.headers.get("message_id"),
        "acknowledged": taken.settled,
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        **identity(shape),
    }
    if taken.refused is not None:
        outcome["reason"] = taken.refused.reason
    level = logging.ERROR if taken.result == "unavailable" else logging.INFO
    log.log(level, "notification", extra=outcome)


# ---------------------------------------------------------------- the table of doors


@dataclass(frozen=True, slots=True)
class Door:
    """A queue door: whether the settings configure it, and how to open its queue from them."""

    name: str
    configured: Callable[[Settings], bool]
    open: Callable[[Settings], Queue]


def _cmq(settings: Settings) -> Queue:
    from mps_callback.intake import cmq

    return cmq.open_queue(settings)


#: Every queue door; a door's module is imported only when it is configured (its client's import costs),
#: e.g. ``Door("sqs", lambda settings: bool(settings.sqs_queue_url), _sqs)`` with ``_sqs`` importing
#: ``intake/sqs.py`` and calling its ``open_queue(settings)``.
def _sqs(settings: Settings) -> Queue:
    from mps_callback.intake import sqs

    return sqs.open_queue(settings)


DOORS: tuple[Door, ...] = (
    Door("cmq", lambda settings: bool(settings.cmq_queue or settings.cmq_endpoint), _cmq),
    Door("sqs", lambda settings: bool(settings.sqs_queue_url), _sqs),
)


def configured_doors(settings: Settings) -> list[Door]:
    return [door for door in DOORS if door.configured(settings)]


# ---------------------------------------------------------------- running a door

#: The longest wait between two receives while the transport fails (doubling from a second).
MAX_BACKOFF_SECONDS = 30.0
#: The pause after a receive that brought nothing (a long poll has waited already).
IDLE_SECONDS = 0.2


#: Told after every round how a door stands (``runtime`` keeps it for ``/readyz`` and the health page).
Report = Callable[[str, dict[str, Any]], None]


def _ignore(_door: str, _state: dict[str, Any]) -> None:
    return None


async def consume(queue: Queue, intake: Intake, report: Report = _ignore) -> None:
    """Pump ``queue`` until cancelled; while its transport fails, wait (doubling), with one log line each way.

    The messages of a failed round were not acknowledged: the transport delivers them again.
    After each round ``report`` gets the door's state: ``ok`` with the time of the round, or
    ``failing`` with the reason and since when.
    """
    wait, failing_since = 0.0, None
    while True:
        try:
            done = await pump(queue, intake)
        except Exception as error:
            metrics.DOOR_ERRORS.labels(queue.name).inc()
            if failing_since is None:
                failing_since = time.time()
                log.warning("queue door failing; retrying", extra={"door": queue.name, "error": _reason(error)})
            report(queue.name, {"state": "failing", "at": time.time(), "since": failing_since, "error": _reason(error)})
            wait = min(max(wait * 2, 1.0), MAX_BACKOFF_SECONDS)
            await asyncio.sleep(wait)
            continue
        if failing_since is not None:
            log.info("queue door working again", extra={"door": queue.name})
        failing_since, wait = None, 0.0
        report(queue.name, {"state": "ok", "at": time.time(), "received": sum(done.results.values())})
        if not done.results:  # a transport that answers an empty poll at once must not spin the loop
            await asyncio.sleep(IDLE_SECONDS)


def _reason(error: BaseException) -> str:
    """The error's type and first line: a transport's messages may be long, never a credential of ours."""
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}".rstrip(": ")[:300]
