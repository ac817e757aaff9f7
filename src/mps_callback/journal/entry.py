"""One notification on its way into the journal, and the receipt it gets back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mps_callback.mps import Envelope, Shape


@dataclass(slots=True)
class JournalEntry:
    received_at: datetime
    shape: Shape
    body: dict[str, Any]
    signature: str
    confirmation: str | None
    channel: str
    envelope: Envelope
    delivery: dict[str, Any]
    dedupe_key: str
    raw_bytes: int

    def row(self) -> dict[str, Any]:
        """The journal row, without the id of the batch that will write it."""
        return {
            "received_at": self.received_at,
            "kind": self.shape.kind,
            "event_type": self.shape.event_type,
            "notification_type": self.shape.notification_type,
            "task_id": self.shape.task_id,
            "session_id": self.shape.session_id,
            "session_context": self.shape.session_context,
            "body": self.body,
            "signature": self.signature,
            "confirmation": self.confirmation,
            "channel": self.channel,
            "wrapper": self.envelope.wrapper,
            "message_id": self.envelope.message_id,
            "delivery": self.delivery,
            "dedupe_key": self.dedupe_key,
            "body_bytes": self.raw_bytes,
        }


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the client is told: the journal row, or that the notification waits in the spool."""

    notification_id: int | None
    duplicate: bool
    spooled: bool = False


SPOOLED = Receipt(notification_id=None, duplicate=False, spooled=True)
