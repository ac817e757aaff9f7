"""The one path every front door uses: decode, verify, redact, journal."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from mps_callback.config import Settings
from mps_callback.errors import Refused
from mps_callback.intake.envelope import MAX_MESSAGE_ID_LENGTH, decode, unwrap
from mps_callback.journal.entry import JournalEntry, Receipt
from mps_callback.mps import Envelope, Shape, dedupe_key
from mps_callback.verify.confirm import TaskConfirmer
from mps_callback.verify.redact import is_secret_name, redact, scrub_url_params
from mps_callback.verify.shape import check_depth, recognise
from mps_callback.verify.signature import check_signature


class Journal(Protocol):
    async def append(self, entry: JournalEntry) -> Receipt: ...


@dataclass(slots=True)
class Delivery:
    """How a body arrived: the door, the peer, and the transport's metadata."""

    channel: str
    remote_addr: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: When a queue took the message in (CMQ's enqueueTime, SQS's SentTimestamp). A notification's
    #: Timestamp is its expiry time, so a queued one is judged by when it was queued, not when a
    #: consumer got round to it: a consumer that was down for an hour must not find them all expired.
    #: A replay is still caught: whoever queues an old notification queues it now.
    sent_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Accepted:
    receipt: Receipt
    shape: Shape


class Confirmer(Protocol):
    async def confirm(self, task_id: str | None) -> str: ...


class Busy(Refused):
    """Too many large bodies at once in this process: 503 with ``Retry-After``, so MPS retries later."""

    RETRY_AFTER_SECONDS = 5

    def __init__(self, reason: str) -> None:
        super().__init__(503, "busy", reason)


@dataclass(slots=True)
class Prepared:
    """A notification decoded, recognised, checked and redacted: everything but the journal."""

    notification: dict[str, Any]
    envelope: Envelope
    shape: Shape
    signature: str
    dedupe_key: str


def prepare(raw: bytes, keys: tuple[str, ...], max_skew: int, now: float) -> Prepared:
    """The CPU part of ``accept``; a refusal after the shape is known carries it.

    Everything that can refuse a body runs here, before the journal: what it is, whether it
    is genuine, whether it can be written at all (its depth). The dedupe key comes last and
    cannot fail, so the journal is only ever handed bodies it can keep.
    """
    notification, envelope = unwrap(decode(raw))
    shape = recognise(notification)
    try:
        signature = check_signature(notification, keys, max_skew, now)
        check_depth(notification)
        redact(notification)
        return Prepared(notification, envelope, shape, signature, dedupe_key(notification))
    except Refused as refused:
        refused.shape = shape
        raise


Verdict = tuple[int, str, str, Shape | None] | None


def screen(raw: bytes, keys: tuple[str, ...], max_skew: int, now: float) -> Verdict:
    """In a child process: would ``accept`` refuse ``raw``? (status, code, reason, shape) or None.

    orjson holds the GIL for the whole decode (seconds for 16 MiB of nested junk), so a
    thread would still stop the event loop; a child process does not. Only the small
    verdict comes back: a junk body never costs the web worker more than its bytes.
    """
    try:
        prepare(raw, keys, max_skew, now)
    except Refused as refused:
        return refused.status, refused.code, refused.reason, refused.shape
    return None


class Screen:
    """The child processes that screen large bodies.

    Started on the first one, with ``spawn``: no fork of a threaded process.
    """

    def __init__(self, workers: int) -> None:
        self._workers = max(workers, 1)
        self._pool: ProcessPoolExecutor | None = None

    async def check(self, raw: bytes, keys: tuple[str, ...], max_skew: int, now: float) -> None:
        """Raise the ``Refused`` that ``accept`` would raise for ``raw``, without decoding it here."""
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self._workers, mp_context=multiprocessing.get_context("spawn"))
        try:
            verdict = await asyncio.wrap_future(self._pool.submit(screen, raw, keys, max_skew, now))
        except BrokenProcessPool:  # a child died (out of memory?): a fresh pool next time
            self._pool = None
            raise Busy("the body could not be screened now; retry") from None
        if verdict is not None:
            status, code, reason, shape = verdict
            refused = Refused(status, code, reason)
            refused.shape = shape
            raise refused

    def close(self) -> None:
        """Stop the children with the web worker (a shutdown should leave no process behind)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


#: How a body fetched from the MPS API with our own credentials (``reconcile.py``) is marked: the
#: ``signature`` it has instead of a Sign, and its ``confirmation`` (MPS itself answered for it).
FETCHED_SIGNATURE = "api"
FETCHED_CONFIRMATION = "confirmed"


class Intake:
    """``accept``: one notification from any door into the journal.

    ``fetched_from_api`` is for ``reconcile.py``'s own Intake only: the bodies it is handed were
    fetched from the MPS API over an authenticated request (DescribeTaskDetail), so they carry no
    Sign to check and need none. They skip the NotifyKey check (which would refuse every one
    of them once ``MPS_NOTIFY_KEYS`` is set) and are marked ``signature='api'``,
    ``confirmation='confirmed'``. It is an argument of the constructor, never something a
    delivery can claim: no door a sender can reach builds its Intake with it.

    Every other Intake confirms with MPS as ``MPS_VERIFY_WITH_API`` says, whichever door it
    serves: the setting is the defence against a forged body (MPS's Sign does not cover it), so
    no door may skip it by being built without it.
    """

    def __init__(self, settings: Settings, journal: Journal, *, fetched_from_api: bool = False) -> None:
        self._fetched = fetched_from_api
        self._keys = () if fetched_from_api else settings.notify_key_values
        self._max_skew = settings.max_skew_seconds
        self._journal = journal
        self._confirmer: Confirmer | None = None if fetched_from_api else TaskConfirmer.from_settings(settings)
        self._large_body_bytes = settings.large_body_bytes
        self._screen = Screen(settings.large_bodies)

    def close(self) -> None:
        self._screen.close()

    async def accept(self, raw: bytes, delivery: Delivery) -> Accepted:
        """Keep ``raw`` durably or raise ``Refused`` / ``JournalUnavailable``.

        A refusal after the shape is known carries it, so the operator's log line names the
        TaskId of, say, an expired notification. A large body is screened in a child process
        first, then prepared in a thread: junk is refused without touching the event loop.
        """
        now = _signature_clock(time.time(), delivery.sent_at)
        if len(raw) > self._large_body_bytes:
            await self._screen.check(raw, self._keys, self._max_skew, now)
            prepared = await asyncio.to_thread(prepare, raw, self._keys, self._max_skew, now)
        else:
            prepared = prepare(raw, self._keys, self._max_skew, now)
        notification, envelope, shape, signature, key = (
            prepared.notification,
            prepared.envelope,
            prepared.shape,
            prepared.signature,
            prepared.dedupe_key,
        )
        confirmation: str | None = FETCHED_CONFIRMATION
        if self._fetched:
            signature = FETCHED_SIGNATURE
        else:
            confirmation = await self._confirmation(shape)
        entry = JournalEntry(
            received_at=datetime.now(UTC),
            shape=shape,
            body=notification,
            signature=signature,
            confirmation=confirmation,
            channel=delivery.channel,
            envelope=_with_transport_id(envelope, delivery),
            delivery=_delivery_record(delivery, envelope.attributes),
            dedupe_key=key,
            raw_bytes=len(raw),
        )
        try:
            return Accepted(await self._journal.append(entry), shape)
        except Refused as refused:  # too large for the database
            refused.shape = shape
            raise

    async def _confirmation(self, shape: Shape) -> str | None:
        """What ``MPS_VERIFY_WITH_API`` says of the task (None: not asked); a refusal carries the shape."""
        try:
            return await self._confirmer.confirm(shape.task_id) if self._confirmer is not None else None
        except Refused as refused:
            refused.shape = shape
            raise


#: The longest a queue keeps a message (CMQ: 15 days, SQS: 14): an older enqueue time (a zero, a bug) is not
#: believed, or every notification would be judged in 1970.
MAX_QUEUED_SECONDS = 15 * 86400


def _signature_clock(now: float, sent_at: datetime | None) -> float:
    """The time a notification's expiry is read against: when a queue took it in, or now."""
    if sent_at is None or not now - MAX_QUEUED_SECONDS <= sent_at.timestamp() <= now:
        return now
    return sent_at.timestamp()


#: Where a transport names its message when no envelope does: the queue doors' ``message_id``, and the
#: header a CMQ topic sends with a SIMPLIFIED push (the body is then the bare notification).
TRANSPORT_MESSAGE_IDS = ("message_id", "x-cmq-message-id")


def _with_transport_id(envelope: Envelope, delivery: Delivery) -> Envelope:
    """The envelope, with the transport's message id when it carries none itself (the journal's
    ``message_id`` column then says which CMQ or SQS message brought the notification)."""
    if envelope.message_id is not None:
        return envelope
    named = next((delivery.headers[name] for name in TRANSPORT_MESSAGE_IDS if delivery.headers.get(name)), None)
    if named is None:
        return envelope
    return Envelope(envelope.wrapper, named[:MAX_MESSAGE_ID_LENGTH], envelope.attributes)


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
