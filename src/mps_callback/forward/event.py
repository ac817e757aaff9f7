"""The event a sink delivers: one change, with the id every sink carries as its idempotency key."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

from mps_callback.store.outbox import EVENT_TYPES, EventName

__all__ = ["EVENT_TYPES", "Event", "EventName", "Kind", "rfc3339"]

Kind = Literal["vod", "live"]


@dataclass(frozen=True, slots=True)
class Event:
    """One event, as the outbox stores it and every sink delivers it.

    ``id`` is stable across retries and forwarders, so a consumer that has seen it can drop the
    repeat (at-least-once delivery). ``sequence`` grows per task, so a consumer can drop a
    ``task.updated`` older than one it already applied. ``kind`` and ``event_type`` (the task's
    MPS ``EventType`` for file tasks, ``NotificationType`` for live streams) are what a sink's
    filters look at; they are not in the envelope because ``data`` already says them in MPS's words.
    """

    id: str
    type: EventName
    timestamp: datetime
    task_id: str | None
    sequence: int
    kind: Kind | None = None
    event_type: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.timestamp.tzinfo is None:
            raise ValueError("Event.timestamp must be timezone-aware (UTC)")

    def envelope(self) -> dict[str, Any]:
        """What every sink sends: ``{"id", "type", "timestamp", "sequence", "data"}``, the timestamp RFC 3339
        in UTC. ``sequence`` counts a task's events (the notification id for ``notification.received``), so
        a consumer can drop an update older than the one it holds."""
        return {
            "id": self.id,
            "type": self.type,
            "timestamp": rfc3339(self.timestamp),
            "sequence": self.sequence,
            "data": self.data,
        }

    def body(self) -> bytes:
        """The envelope as JSON bytes: what a webhook signs and a queue carries."""
        return orjson.dumps(self.envelope())


def rfc3339(instant: datetime) -> str:
    """``2026-11-24T11:22:19.123456Z``: UTC with a ``Z``, the form every JSON consumer parses."""
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")
