"""The HTTP front door: ``POST /pyapi/mps/callback`` (existing deployments) and ``/v1/mps/callback``.

A plain ASGI handler placed in front of the FastAPI app: the callback is the hot path
(thousands a second), and FastAPI's routing and middleware stack would cost more than
everything the notification itself needs. Every other path goes on to FastAPI. The body
is read raw and capped while it streams: MPS documents no Content-Type (CMQ pushes
text/plain), and the 5,000-field notification tree is walked later, not modelled.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs

import orjson

from mps_callback import metrics
from mps_callback.errors import Refused
from mps_callback.intake import doors
from mps_callback.intake.accept import Busy, Delivery

log = logging.getLogger("mps_callback.intake")

CALLBACK_PATHS = ("/pyapi/mps/callback", "/v1/mps/callback")
Scope = dict[str, Any]


class LargeBodies:
    """How many large bodies, and how many of their bytes, this process holds at once.

    Without a URL token anyone can post 16 MiB; a hundred slow uploads would hold 1.5 GB
    and four fast ones would keep the CPU busy decoding. Beyond the limits the answer is
    503 with ``Retry-After`` (MPS retries), decided from Content-Length before the body is
    read, or once a streamed body crosses the threshold.
    """

    def __init__(self, threshold: int, slots: int, budget: int) -> None:
        self.threshold, self.slots, self.budget = threshold, slots, budget
        self.taken = 0  # bodies
        self.held = 0  # their bytes

    @contextmanager
    def ticket(self) -> Iterator[Ticket]:
        """A ticket for one request; whatever it came to hold is given back at the end."""
        ticket = Ticket(self)
        try:
            yield ticket
        finally:
            self.taken -= ticket.entered
            self.held -= ticket.size


class Ticket:
    """One request's share of :class:`LargeBodies`: nothing until its body is large."""

    def __init__(self, limits: LargeBodies) -> None:
        self.limits = limits
        self.entered = 0
        self.size = 0

    def need(self, size: int) -> None:
        """The body is (or will be) ``size`` bytes: hold that much, or raise ``Busy``."""
        limits = self.limits
        if size <= limits.threshold or size <= self.size:
            return
        if not self.entered:
            if limits.taken >= limits.slots:
                raise Busy(f"{limits.taken} large bodies are being taken already; retry later")
            limits.taken += 1
            self.entered = 1
        if limits.held + size - self.size > limits.budget:
            raise Busy("too many large bodies buffered now; retry later")
        limits.held += size - self.size
        self.size = size


class CallbackDoor:
    """ASGI app: takes POSTs to the callback paths itself, hands everything else to ``app``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state = app.state  # the FastAPI app's lifespan fills it: settings, intake
        self._large: LargeBodies | None = None

    def large_bodies(self) -> LargeBodies:
        if self._large is None:  # settings arrive with the lifespan, after __init__
            settings = self.state.settings
            self._large = LargeBodies(
                settings.large_body_bytes, settings.large_bodies, settings.large_body_budget_bytes
            )
        return self._large

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] not in CALLBACK_PATHS:
            await self.app(scope, receive, send)
        elif scope["method"] != "POST":
            await _send(send, 405, {"code": 405, "message": "use POST"}, [(b"allow", b"POST")])
        else:
            status, body = await self.take(scope, receive)
            retry = [(b"retry-after", b"%d" % Busy.RETRY_AFTER_SECONDS)] if status == 503 else []
            await _send(send, status, body, retry)

    async def take(self, scope: Scope, receive: Any) -> tuple[int, dict[str, Any]]:
        """One notification through the door: the answer and one log line, whatever happens."""
        started = time.perf_counter()
        settings, intake = self.state.settings, self.state.intake
        try:
            _check_url_token(scope, settings.url_token.get_secret_value())
            with self.large_bodies().ticket() as ticket:  # held until accept is done with the body
                raw = await _read_body(scope, receive, settings.max_body_bytes, settings.body_timeout_seconds, ticket)
                taken = await doors.take(intake, raw, _delivery(scope))
        except Refused as refused:  # before the body reached the intake: the URL token, its size, its arrival
            metrics.NOTIFICATIONS.labels(*doors.labels(refused.shape), "refused", refused.code).inc()
            taken = doors.Taken("refused", refused=refused)
        if (refusal := taken.refused) is not None:
            outcome = {
                "outcome": "refused",
                "status": refusal.status,
                "reason": refusal.reason,
                **doors.identity(refusal.shape),
            }
            return _logged(refusal.status, {"code": refusal.status, "message": refusal.reason}, started, outcome)
        if taken.accepted is None:
            outcome = {"outcome": "unavailable", "status": 503, "reason": "database and spool both unavailable"}
            return _logged(503, {"code": 503, "message": "cannot store the notification now; retry"}, started, outcome)
        accepted, result = taken.accepted, taken.result
        receipt = accepted.receipt
        body: dict[str, Any] = {
            "code": 0,
            "message": "ok",
            "notification_id": receipt.notification_id,
            "duplicate": receipt.duplicate,
        }
        if receipt.spooled:
            body["spooled"] = True
        outcome = {
            "outcome": result,
            "status": 200,
            "notification_id": receipt.notification_id,
            **doors.identity(accepted.shape),
        }
        return _logged(200, body, started, outcome)


def _logged(status: int, body: dict[str, Any], started: float, outcome: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    outcome["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
    # a refused 503 ("busy") is a flood of large bodies, not a failure of ours: a warning
    level = logging.ERROR if outcome["outcome"] == "unavailable" else logging.WARNING if status >= 500 else logging.INFO
    log.log(level, "notification", extra=outcome)
    return status, body


async def _send(
    send: Any, status: int, body: dict[str, Any], extra_headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    payload = orjson.dumps(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload)), *extra_headers]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _check_url_token(scope: Scope, expected: str) -> None:
    if not expected:
        return
    given = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Refused(401, "url_token", "missing or wrong URL token")


async def _read_body(scope: Scope, receive: Any, limit: int, timeout: float, ticket: Ticket) -> bytes:  # noqa: ASYNC109
    """The body, refused with 413 once it exceeds ``limit`` bytes, 408 if it trickles in past ``timeout``,
    503 (``Busy``) when it is large and this process holds enough large bodies already.

    The timeout is a parameter (not the caller's ``asyncio.timeout``) because running out of it
    is an answer to the client, 408, decided here where the body is read."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit():
            if int(value) > limit:
                raise Refused(413, "too_large", f"body larger than {limit} bytes")
            ticket.need(int(value))
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise Refused(400, "disconnected", "client went away before the body was complete")
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise Refused(413, "too_large", f"body larger than {limit} bytes")
                ticket.need(size)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError:
        raise Refused(408, "slow_body", f"body not received within {timeout:g} s") from None


def _delivery(scope: Scope) -> Delivery:
    client = scope.get("client")
    return Delivery(
        channel="http",
        remote_addr=client[0] if client else None,
        headers={name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]},
    )


#: The callback routes in the OpenAPI document (they are served by CallbackDoor, not FastAPI).
_OPERATION = {
    "tags": ["callback"],
    "summary": "Take an MPS notification",
    "requestBody": {
        "required": True,
        "description": "An MPS notification (EventType or NotificationType shape), bare or in a CMQ envelope.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    "parameters": [
        {
            "name": "token",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "MPS_URL_TOKEN, when one is configured",
        }
    ],
    "responses": {
        "200": {
            "description": "durable (journaled, or spooled while the database is away)",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "code": {"type": "integer"},
                            "message": {"type": "string"},
                            "notification_id": {"type": ["integer", "null"]},
                            "duplicate": {"type": "boolean"},
                            "spooled": {"type": "boolean"},
                        },
                    }
                }
            },
        },
        "400": {"description": "not JSON, not an MPS shape, malformed Sign/Timestamp"},
        "401": {"description": "missing, wrong or expired signature; wrong URL token"},
        "408": {"description": "body not received within MPS_BODY_TIMEOUT_SECONDS"},
        "413": {"description": "body larger than MPS_MAX_BODY_BYTES"},
        "503": {
            "description": "could not be made durable, or too many large bodies at once: retry later (Retry-After)"
        },
    },
}
OPENAPI_PATHS = {
    path: {"post": {**_OPERATION, "operationId": f"callback_{index}"}} for index, path in enumerate(CALLBACK_PATHS)
}
