"""Decode a request body and take the notification out of whatever wraps it.

Two wrappers reach a receiver in practice: a CMQ/TDMQ topic pushing to HTTP sends
``{"msgId": ..., "msgBody": "<the notification as a string>", ...}``, and a notification
passed through Tencent's ParseNotification API comes as ``{"Response": {...}}``. The
notification inside is what gets verified and kept; the envelope's ids are kept beside it.
"""

from __future__ import annotations

from typing import Any

import orjson

from mps_callback.errors import Refused
from mps_callback.mps import Envelope


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


#: What is kept of an envelope. Its ids and attributes are the sender's to choose and are
#: kept beside the notification, so they are held to what a CMQ/TDMQ push carries: a few
#: flat fields. Ids longer than the journal column are clipped (they identify a delivery,
#: not a task, so nothing merges); strings are clipped; nesting is refused.
MAX_MESSAGE_ID_LENGTH = 255
MAX_ATTRIBUTES = 64
MAX_ATTRIBUTE_NAME_LENGTH = 128
MAX_ATTRIBUTE_STRING_LENGTH = 4096
MAX_ENVELOPE_DEPTH = 8


def unwrap(document: dict[str, Any]) -> tuple[dict[str, Any], Envelope]:
    """Return the notification inside ``document`` and what wrapped it (ids and attributes checked and clipped)."""
    message_body = document.get("msgBody")
    if isinstance(message_body, str):
        attributes = _attributes({key: value for key, value in document.items() if key != "msgBody"})
        message_id = _message_id(document.get("msgId"), "msgId")
        inner = decode(message_body.encode())
        return inner, Envelope("cmq", message_id, attributes)
    response = document.get("Response")
    if isinstance(response, dict) and len(document) == 1:
        inner = {key: value for key, value in response.items() if key != "RequestId"}
        return inner, Envelope("api-response", _message_id(response.get("RequestId"), "Response.RequestId"), {})
    return document, Envelope()


def _message_id(value: Any, name: str) -> str | None:
    """A string or integer id, clipped to the journal column; anything else is refused."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise Refused(400, "bad_envelope", f"envelope {name} must be a string or an integer, not {_json_kind(value)}")
    return str(value)[:MAX_MESSAGE_ID_LENGTH]


def _attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """The envelope's other fields: at most ``MAX_ATTRIBUTES``, names and strings clipped, nesting bounded.

    Checked here, at intake, because a deep value would otherwise fail only when the
    journal row is serialised (orjson stops at 255 levels): after the database retries and
    the spool, as a 500.
    """
    if len(attributes) > MAX_ATTRIBUTES:
        raise Refused(400, "bad_envelope", f"envelope has more than {MAX_ATTRIBUTES} fields")
    if _deeper_than(attributes, MAX_ENVELOPE_DEPTH):
        raise Refused(400, "too_deep", f"envelope fields nested deeper than {MAX_ENVELOPE_DEPTH} levels")
    return {key[:MAX_ATTRIBUTE_NAME_LENGTH]: _clipped(value) for key, value in attributes.items()}


def _clipped(value: Any) -> Any:
    """``value`` with every string clipped (recursion is safe: the depth was bounded first)."""
    if isinstance(value, str):
        return value[:MAX_ATTRIBUTE_STRING_LENGTH]
    if isinstance(value, dict):
        return {key[:MAX_ATTRIBUTE_NAME_LENGTH]: _clipped(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clipped(item) for item in value]
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether containers nest more than ``limit`` levels; iterative, stops at the first too deep."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


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
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")
