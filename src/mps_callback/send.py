"""The local stand-in for MPS: stamp a notification with a fresh Timestamp and Sign, and POST it."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson

from mps_callback.verify.signature import sign

#: MPS's own default: a notification expires ten minutes after it is sent.
VALIDITY_SECONDS = 600


def stamp(notification: dict[str, Any], key: str | None, now: float | None = None) -> dict[str, Any]:
    """A copy of ``notification`` signed with ``key``, or unsigned (no Sign/Timestamp) without one."""
    stamped = {name: value for name, value in notification.items() if name not in ("Timestamp", "Sign")}
    if key:
        expires = int(now if now is not None else time.time()) + VALIDITY_SECONDS
        stamped["Timestamp"] = expires
        stamped["Sign"] = sign(expires, key)
    return stamped


def post(url: str, notification: dict[str, Any], timeout: float = 10.0) -> httpx.Response:
    return httpx.post(
        url,
        content=orjson.dumps(notification),
        headers={"Content-Type": "application/json"},
        timeout=timeout,
    )
