"""The SCF door: ``main_handler`` as a Tencent Cloud SCF function (handler ``mps_callback.scf.main_handler``).

Two triggers call it. MPS's own (``TaskNotifyConfig.NotifyType: "SCF"``; only WorkflowTask and
EditMediaTask are sent this way): ``event`` is the notification itself, a dict. An API gateway
trigger: ``event`` is an HTTP request (``httpMethod``, ``headers``, ``body``, ``isBase64Encoded``,
``queryString``, ``requestContext``; tencentcloud.com/document/product/583/12513) and the answer
is an integration response dict (``isBase64Encoded``, ``statusCode``, ``headers``, ``body``).

Both go through the one accept path (``intake/doors.take``: verify, redact, journal) into
``MPS_DATABASE_URL``. There is no spool: an SCF instance's disk does not outlive it. So a
notification the database did not take is an exception (SCF retries the invocation, or the API
gateway answers 5xx and MPS retries); the write is one transaction, so nothing is half written.
A refusal retrying cannot mend (400, 413) is answered (a 4xx dict) or, from the MPS trigger,
logged and returned; one it may (401 while a key is being fixed, 503 busy) raises from the MPS
trigger so SCF retries it (and, past its retries, its dead-letter queue keeps it).

SCF keeps a warm process between invocations: the engine, journal and intake live at module
level on one event loop. The schema is not migrated here: run ``mps-callback db upgrade``
before deploying; a database without the schema is refused with that instruction.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from mps_callback.config import Settings
from mps_callback.errors import Refused
from mps_callback.intake.accept import Delivery, Intake
from mps_callback.intake.doors import Taken, identity, take
from mps_callback.journal.entry import JournalEntry, Receipt
from mps_callback.journal.limits import RowLimit
from mps_callback.journal.write import write_batch
from mps_callback.store.engine import create_engine, for_writing
from mps_callback.store.outbox import Outbox

log = logging.getLogger(__name__)

CHANNEL = "scf"
JSON_HEADERS = {"Content-Type": "application/json"}


class SchemaMissing(RuntimeError):
    """The database has no journal: the function was deployed before ``mps-callback db upgrade``."""


class NotKept(RuntimeError):
    """A refusal that retrying may mend: raised so SCF invokes the function again."""


class DirectJournal:
    """One transaction per notification, straight to the database: no group commit, no spool to fall back on."""

    def __init__(self, engine: AsyncEngine, limit: RowLimit, outbox: Outbox) -> None:
        self._engine, self._limit, self._outbox = engine, limit, outbox

    async def append(self, entry: JournalEntry) -> Receipt:
        self._limit.check(entry.body, entry.delivery, entry.raw_bytes)
        [receipt] = await write_batch(self._engine, [entry], self._outbox)
        return receipt


@dataclass(slots=True)
class Warm:
    """What a warm SCF process keeps between invocations."""

    loop: asyncio.AbstractEventLoop
    settings: Settings
    engine: AsyncEngine
    outbox: Outbox  # the forward sinks' events (MPS_FORWARD_CONFIG), in the journal's transaction
    intake: Intake | None = None  # once the schema was found


#: The warm process's state, under ``"state"`` once the first invocation made it.
_WARM: dict[str, Warm] = {}


def _state() -> Warm:
    if "state" not in _WARM:
        from mps_callback.runtime import outbox

        settings = Settings()
        loop = asyncio.new_event_loop()
        engine = for_writing(create_engine(settings.database_url.get_secret_value()))
        _WARM["state"] = Warm(loop, settings, engine, outbox())
    return _WARM["state"]


async def _intake(warm: Warm) -> Intake:
    """The intake, once the database has the journal's table (checked until it has)."""
    if warm.intake is None:
        async with warm.engine.connect() as connection:
            present = await connection.run_sync(lambda sync: sa.inspect(sync).has_table("notifications"))
            limit = RowLimit(warm.settings.max_body_bytes, warm.engine.dialect.name)
            if present:
                await limit.refresh(connection)
        if not present:
            raise SchemaMissing("the database has no mps-callback schema: run `mps-callback db upgrade` first")
        journal = DirectJournal(warm.engine, limit, warm.outbox)
        warm.intake = Intake(warm.settings, journal)
    return warm.intake


def reset() -> None:
    """Drop the warm state (tests; a process about to end): the next invocation starts afresh."""
    warm = _WARM.pop("state", None)
    if warm is not None:
        warm.loop.run_until_complete(warm.engine.dispose())
        if warm.intake is not None:
            warm.intake.close()
        warm.loop.close()


# ---------------------------------------------------------------- the handler


def main_handler(event: Any, context: Any) -> dict[str, Any]:
    """SCF's entry point: an API gateway request (answered as one) or MPS's notification (raised if retry helps)."""
    warm = _state()
    if isinstance(event, Mapping) and "httpMethod" in event:
        return warm.loop.run_until_complete(_gateway(warm, event, context))
    return warm.loop.run_until_complete(_trigger(warm, event, context))


async def _gateway(warm: Warm, event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    try:
        _check_url_token(event, warm.settings.url_token.get_secret_value())
        raw = _request_body(event)
    except Refused as refused:
        _log_refusal(refused, "apigw")
        return response(refused.status, {"code": refused.status, "message": refused.reason})
    headers = {"trigger": "apigw", **_request_id(context)}
    taken = await take(await _intake(warm), raw, Delivery(CHANNEL, _source_ip(event), headers))
    if taken.refused is not None:
        _log_refusal(taken.refused, "apigw")
        return response(taken.refused.status, {"code": taken.refused.status, "message": taken.refused.reason})
    return response(200, _ok(taken))


async def _trigger(warm: Warm, event: Any, context: Any) -> dict[str, Any]:
    try:
        raw = _event_bytes(event)
    except Refused as refused:
        _log_refusal(refused, "mps")
        return {"code": refused.status, "message": refused.reason}
    taken = await take(await _intake(warm), raw, Delivery(CHANNEL, None, {"trigger": "mps", **_request_id(context)}))
    if taken.refused is None:
        return _ok(taken)
    _log_refusal(taken.refused, "mps")
    if not taken.settled:
        raise NotKept(f"refused ({taken.refused.status} {taken.refused.code}): {taken.refused.reason}")
    return {"code": taken.refused.status, "message": taken.refused.reason}


def _ok(taken: Taken) -> dict[str, Any]:
    if taken.accepted is None:  # take() returns a refusal or an acceptance; a failed write raised
        raise NotKept(f"not kept: {taken.result}")
    receipt = taken.accepted.receipt
    return {"code": 0, "message": "ok", "notification_id": receipt.notification_id, "duplicate": receipt.duplicate}


def response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    """An API gateway integration response."""
    return {
        "isBase64Encoded": False,
        "statusCode": status,
        "headers": JSON_HEADERS,
        "body": orjson.dumps(body).decode(),
    }


def _event_bytes(event: Any) -> bytes:
    """The MPS trigger's event as JSON bytes (Sign covers Timestamp and the key only: re-encoding changes nothing).

    An event JSON cannot hold (nested past 255 levels, an integer past 64 bits) can never be a notification:
    a 400, logged and answered, not an exception SCF would retry until its dead-letter queue.
    """
    try:
        return orjson.dumps(event)
    except (orjson.JSONEncodeError, TypeError) as error:
        raise Refused(400, "not_json", f"the event cannot be a notification: {error}") from None


def _request_body(event: Mapping[str, Any]) -> bytes:
    body = event.get("body") or ""
    if not isinstance(body, str):
        raise Refused(400, "not_json", "the request has no text body")
    if not event.get("isBase64Encoded"):
        return body.encode(errors="surrogatepass")  # a lone surrogate: bytes that are not UTF-8, refused as such
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise Refused(400, "not_json", "isBase64Encoded but the body is not base64") from None


def _check_url_token(event: Mapping[str, Any], expected: str) -> None:
    """``MPS_URL_TOKEN``, as the HTTP door checks it: the API gateway passes the query as ``queryString``."""
    if not expected:
        return
    query = event.get("queryString") or {}
    given = query.get("token", "") if isinstance(query, Mapping) else ""
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Refused(401, "url_token", "missing or wrong URL token")


def _source_ip(event: Mapping[str, Any]) -> str | None:
    context = event.get("requestContext")
    ip = context.get("sourceIp") if isinstance(context, Mapping) else None
    return ip if isinstance(ip, str) else None


def _request_id(context: Any) -> dict[str, str]:
    """SCF's request id (the context is a dict in Python functions) as delivery metadata."""
    found = context.get("request_id") if isinstance(context, Mapping) else getattr(context, "request_id", None)
    return {"request_id": str(found)} if found else {}


def _log_refusal(refused: Refused, trigger: str) -> None:
    extra = {"door": CHANNEL, "trigger": trigger, "status": refused.status, "reason": refused.reason}
    log.warning("notification refused", extra=extra | identity(refused.shape))
