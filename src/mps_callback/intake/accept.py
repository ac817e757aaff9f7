"""The one path every front door uses: decode, verify, redact, journal."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from mps_callback.config import Settings
from mps_callback.errors import Refused
from mps_callback.intake.envelope import decode, unwrap
from mps_callback.journal.entry import JournalEntry, Receipt, dedupe_key
from mps_callback.verify.redact import is_secret_name, redact, scrub_url_params
from mps_callback.verify.shape import Shape, recognise
from mps_callback.verify.signature import check_signature


class Journal(Protocol):
    async def append(self, entry: JournalEntry) -> Receipt: ...


@dataclass(slots=True)
class Delivery:
    """How a body arrived: the door, the peer, and the transport's metadata."""

    channel: str
    remote_addr: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Accepted:
    receipt: Receipt
    shape: Shape


class Confirmer(Protocol):
    async def confirm(self, task_id: str | None) -> str: ...


class Intake:
    def __init__(self, settings: Settings, journal: Journal, confirmer: Confirmer | None = None) -> None:
        self._keys = settings.notify_key_values
        self._max_skew = settings.max_skew_seconds
        self._journal = journal
        self._confirmer = confirmer

    async def accept(self, raw: bytes, delivery: Delivery) -> Accepted:
        """Keep ``raw`` durably or raise ``Refused`` / ``JournalUnavailable``.

        A refusal after the shape is known carries it, so the operator's log line names the
        TaskId of, say, an expired notification.
        """
        notification, envelope = unwrap(decode(raw))
        shape = recognise(notification)
        try:
            signature = check_signature(notification, self._keys, self._max_skew, time.time())
            redact(notification, raw)
            key = dedupe_key(notification)
            confirmation = await self._confirmer.confirm(shape.task_id) if self._confirmer is not None else None
        except Refused as refused:
            refused.shape = shape
            raise
        entry = JournalEntry(
            received_at=datetime.now(timezone.utc),
            shape=shape,
            body=notification,
            signature=signature,
            confirmation=confirmation,
            channel=delivery.channel,
            envelope=envelope,
            delivery=_delivery_record(delivery, envelope.attributes),
            dedupe_key=key,
            raw_bytes=len(raw),
        )
        try:
            return Accepted(await self._journal.append(entry), shape)
        except Refused as refused:  # too large for the database
            refused.shape = shape
            raise


def _delivery_record(delivery: Delivery, envelope_attributes: dict[str, Any]) -> dict[str, Any]:
    """What is kept of the transport: no credentials (see ``safe_headers``)."""
    record: dict[str, Any] = {"remote_addr": delivery.remote_addr, "headers": safe_headers(delivery.headers)}
    if envelope_attributes:
        redact(envelope_attributes)
        record["envelope"] = envelope_attributes
    return record


#: Headers that carry credentials whatever their name says.
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})


def safe_headers(headers: dict[str, str]) -> dict[str, str]:
    """Headers minus credentials, and with secret URL parameters scrubbed from the rest.

    Dropped: the fixed set above and any whose name says secret/key/token. Kept values go
    through ``scrub_url_params``: a proxy's ``X-Original-URI``, ``X-Forwarded-Uri`` or a
    ``Referer`` repeats the callback URL, whose ``?token=`` is ``MPS_URL_TOKEN``.
    """
    return {
        name: scrub_url_params(value)[0] if "=" in value else value
        for name, value in headers.items()
        if name.lower() not in _CREDENTIAL_HEADERS and not is_secret_name(name)
    }
