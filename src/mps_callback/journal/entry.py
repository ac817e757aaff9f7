"""One notification on its way into the journal, and the receipt it gets back."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from mps_callback.errors import Refused
from mps_callback.intake.envelope import Envelope
from mps_callback.verify.shape import Shape

#: Fields that change on every retry of the same notification, so they are not part of its identity.
VOLATILE_FIELDS = ("Timestamp", "Sign")


def dedupe_key(body: dict[str, Any]) -> str:
    """SHA-256 of the canonical body (sorted keys) without Timestamp and Sign.

    MPS may deliver one notification several times (retries, CMQ redelivery) with a fresh
    Timestamp and Sign each time; everything else is the same, so this key is too.
    """
    canonical = {key: value for key, value in body.items() if key not in VOLATILE_FIELDS}
    try:
        return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()
    except orjson.JSONEncodeError:  # orjson serialises 255 levels at most: no MPS body comes near
        raise Refused(400, "too_deep", "JSON nested deeper than 255 levels") from None


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
