"""Decode a request body and take the notification out of whatever wraps it.

Two wrappers reach a receiver in practice: a CMQ/TDMQ topic pushing to HTTP sends
``{"msgId": ..., "msgBody": "<the notification as a string>", ...}``, and a notification
passed through Tencent's ParseNotification API comes as ``{"Response": {...}}``. The
notification inside is what gets verified and kept; the envelope's ids are kept beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from mps_callback.errors import Refused


@dataclass(slots=True)
class Envelope:
    """What wrapped the notification: ``none``, ``cmq`` or ``api-response``, and its ids."""

    wrapper: str = "none"
    message_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


def decode(raw: bytes) -> dict[str, Any]:
    """Parse a body as one JSON object, refusing anything else with a reason."""
    if not raw.strip():
        raise Refused(400, "empty", "empty body")
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise Refused(400, "not_json", f"body is not valid JSON: {_short(error)}") from None
    if not isinstance(document, dict):
        raise Refused(400, "not_object", f"body must be a JSON object, not {_json_kind(document)}")
    if b"\\u0000" in raw and _has_nul(document):
        raise Refused(400, "nul_character", "body contains U+0000 in a string, which databases cannot store")
    return document


def unwrap(document: dict[str, Any]) -> tuple[dict[str, Any], Envelope]:
    """Return the notification inside ``document`` and what wrapped it."""
    message_body = document.get("msgBody")
    if isinstance(message_body, str):
        attributes = {key: value for key, value in document.items() if key != "msgBody"}
        message_id = document.get("msgId")
        inner = decode(message_body.encode())
        return inner, Envelope("cmq", str(message_id) if message_id is not None else None, attributes)
    response = document.get("Response")
    if isinstance(response, dict) and len(document) == 1:
        inner = {key: value for key, value in response.items() if key != "RequestId"}
        return inner, Envelope("api-response", response.get("RequestId"), {})
    return document, Envelope()


def _has_nul(value: Any) -> bool:
    """Whether any key or string holds U+0000 (PostgreSQL refuses it in text and JSONB)."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return True
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def _short(error: orjson.JSONDecodeError) -> str:
    return str(error)[:200]


def _json_kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )
