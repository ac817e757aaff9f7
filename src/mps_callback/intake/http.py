"""The HTTP front door: ``POST /pyapi/mps/callback`` (existing deployments) and ``/v1/mps/callback``.

The body is read raw and capped while it streams: MPS documents no Content-Type (CMQ
pushes text/plain), and the 5,000-field notification tree is walked later, not modelled.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from mps_callback import metrics
from mps_callback.errors import JournalUnavailable, Refused
from mps_callback.intake.accept import Delivery, Intake

log = logging.getLogger("mps_callback.intake")

router = APIRouter(tags=["callback"])

_OPENAPI = {
    "requestBody": {
        "required": True,
        "description": "An MPS notification (EventType or NotificationType shape), bare or in a CMQ envelope.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    "responses": {
        "400": {"description": "not JSON, not an MPS shape, malformed Sign/Timestamp"},
        "401": {"description": "missing, wrong or expired signature; wrong URL token"},
        "408": {"description": "body not received within MPS_BODY_TIMEOUT_SECONDS"},
        "413": {"description": "body larger than MPS_MAX_BODY_BYTES"},
        "503": {"description": "could not be made durable: retry later"},
    },
}


@router.post("/pyapi/mps/callback", openapi_extra=_OPENAPI, summary="Take an MPS notification")
@router.post("/v1/mps/callback", openapi_extra=_OPENAPI, summary="Take an MPS notification")
async def callback(request: Request) -> Response:
    started = time.perf_counter()
    settings = request.app.state.settings
    intake: Intake = request.app.state.intake
    outcome: dict[str, Any] = {}
    try:
        _check_url_token(request, settings.url_token.get_secret_value())
        raw = await _read_capped(request, settings.max_body_bytes, settings.body_timeout_seconds)
        accepted = await intake.accept(raw, _delivery(request))
    except Refused as refused:
        outcome = {"outcome": "refused", "status": refused.status, "reason": refused.reason, **_identity(refused.shape)}
        metrics.NOTIFICATIONS.labels(*_labels(refused.shape), "refused", refused.code).inc()
        return _answer(refused.status, {"code": refused.status, "message": refused.reason}, started, outcome)
    except JournalUnavailable as error:
        outcome = {"outcome": "unavailable", "status": 503, "reason": str(error)}
        metrics.NOTIFICATIONS.labels("unknown", "none", "unavailable", "storage").inc()
        return _answer(503, {"code": 503, "message": "cannot store the notification now; retry"}, started, outcome)
    receipt = accepted.receipt
    result = "spooled" if receipt.spooled else "duplicate" if receipt.duplicate else "accepted"
    outcome = {"outcome": result, "status": 200, "notification_id": receipt.notification_id, **_identity(accepted.shape)}
    metrics.NOTIFICATIONS.labels(*_labels(accepted.shape), result, "").inc()
    body: dict[str, Any] = {"code": 0, "message": "ok", "notification_id": receipt.notification_id,
                            "duplicate": receipt.duplicate}
    if receipt.spooled:
        body["spooled"] = True
    return _answer(200, body, started, outcome)


def _answer(status: int, body: dict[str, Any], started: float, outcome: dict[str, Any]) -> Response:
    outcome["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
    log.log(logging.INFO if status < 500 else logging.ERROR, "notification", extra=outcome)
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _labels(shape: Any) -> tuple[str, str]:
    if shape is None:
        return "unknown", "none"
    return shape.kind, metrics.type_label(shape.type)


def _identity(shape: Any) -> dict[str, Any]:
    if shape is None:
        return {}
    return {"task_id": shape.task_id, "kind": shape.kind, "type": shape.type}


def _check_url_token(request: Request, expected: str) -> None:
    if not expected:
        return
    given = request.query_params.get("token", "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Refused(401, "url_token", "missing or wrong URL token")


async def _read_capped(request: Request, limit: int, timeout: float) -> bytes:
    """The body, refused with 413 once it exceeds ``limit`` bytes, 408 if it trickles in past ``timeout``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Refused(413, "too_large", f"body larger than {limit} bytes")
    received = bytearray()

    async def read() -> None:
        async for chunk in request.stream():
            received.extend(chunk)
            if len(received) > limit:
                raise Refused(413, "too_large", f"body larger than {limit} bytes")

    try:
        await asyncio.wait_for(read(), timeout)
    except TimeoutError:
        raise Refused(408, "slow_body", f"body not received within {timeout:g} s") from None
    return bytes(received)


def _delivery(request: Request) -> Delivery:
    return Delivery(
        channel="http",
        remote_addr=request.client.host if request.client else None,
        headers=dict(request.headers),
    )
