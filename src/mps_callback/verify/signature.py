"""MPS's notification signature: ``Sign = MD5(str(Timestamp) + NotifyKey)``.

``Timestamp`` is an *expiry* instant (send time + 10 minutes by default), not the send
time. The signature does not cover the body, so it proves only that the sender knew a
NotifyKey recently; see ../reference/protocol.md and the URL token / API confirmation
options for the rest.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any, Literal

from mps_callback.errors import Refused

#: A Timestamp further ahead than this is not an MPS expiry time (MPS uses now + 600 s);
#: accepting it would let one captured signature be replayed for years.
MAX_AHEAD_SECONDS = 24 * 3600

_HEX32 = re.compile(r"[0-9a-fA-F]{32}")

SignatureOutcome = Literal["verified", "unverified", "unsigned"]


def sign(timestamp: int, key: str) -> str:
    """The Sign MPS puts on a notification expiring at ``timestamp``."""
    return hashlib.md5(f"{timestamp}{key}".encode()).hexdigest()  # noqa: S324 -- MPS defines Sign as MD5; not ours to choose


def check_signature(body: dict[str, Any], keys: tuple[str, ...], max_skew_seconds: int, now: float) -> SignatureOutcome:
    """Refuse a body whose Sign/Timestamp are malformed, wrong or expired.

    Returns ``verified`` when a configured key matched, and, when no key is configured,
    ``unverified`` (signed, but we cannot check) or ``unsigned``.
    """
    timestamp = _timestamp(body.get("Timestamp"))
    signature = _signature(body.get("Sign"))
    if not keys:
        return "unsigned" if signature is None else "unverified"
    if timestamp is None or signature is None:
        raise Refused(401, "unsigned", "unsigned: Sign and Timestamp are required (a NotifyKey is configured)")
    if not _matches_any(timestamp, signature, keys):
        raise Refused(401, "bad_sign", "Sign does not match any configured NotifyKey")
    if now > timestamp + max_skew_seconds:
        raise Refused(401, "expired", f"expired: Timestamp {timestamp} is {int(now - timestamp)} s in the past")
    if timestamp > now + MAX_AHEAD_SECONDS + max_skew_seconds:
        raise Refused(401, "future", f"Timestamp {timestamp} is more than a day in the future")
    return "verified"


def _matches_any(timestamp: int, signature: str, keys: tuple[str, ...]) -> bool:
    """Constant-time comparison against every key, in both concatenation orders.

    One of Tencent's doc sets writes the key first; both orders need the key, so accepting
    both costs nothing. Every candidate is compared, so timing does not tell which matched.
    """
    given = signature.lower().encode()
    matched = False
    for key in keys:
        for text in (f"{timestamp}{key}", f"{key}{timestamp}"):
            expected = hashlib.md5(text.encode()).hexdigest().encode()  # noqa: S324 -- MPS defines Sign as MD5
            matched |= hmac.compare_digest(expected, given)
    return matched


def _timestamp(value: object) -> int | None:
    """Timestamp as an int; MPS documents an integer, a decimal string is tolerated."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 12:
        return int(value)
    raise Refused(400, "bad_timestamp", "Timestamp must be an integer (Unix seconds)")


def _signature(value: object) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and _HEX32.fullmatch(value):
        return value
    raise Refused(400, "bad_sign_format", "Sign must be 32 hexadecimal characters (an MD5 digest)")
