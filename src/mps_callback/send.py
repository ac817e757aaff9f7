"""The local stand-in for MPS: stamp a notification with a fresh Timestamp and Sign, and POST it.

The receiver verifies the notification it finds *inside* an envelope (see
``intake/envelope.py``), so a CMQ/TDMQ message is signed in its ``msgBody`` and an API
response in its ``Response``: the same unwrap decides where, so sender and receiver agree.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from mps_callback.intake.envelope import decode, unwrap
from mps_callback.verify.signature import sign

#: MPS's own default: a notification expires ten minutes after it is sent.
VALIDITY_SECONDS = 600
CALLBACK_PATH = "/v1/mps/callback"
#: Addresses a server listens on that a client cannot connect to: "every interface" means this machine.
#: (Mapped away from, never bound: hence the S104 exemption.)
WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1", "[::]": "::1"}  # noqa: S104


def default_url(host: str, port: int) -> str:
    """The callback URL of a receiver started with MPS_HOST/MPS_PORT, as a client on this machine reaches it."""
    client_host = WILDCARD_HOSTS.get(host, host)
    if ":" in client_host and not client_host.startswith("["):  # an IPv6 literal
        client_host = f"[{client_host}]"
    return f"http://{client_host}:{port}{CALLBACK_PATH}"


def stamp_fields(notification: dict[str, Any], key: str | None, now: float | None = None) -> dict[str, Any]:
    """A copy of a bare ``notification`` signed with ``key``, or unsigned (no Sign/Timestamp) without one."""
    stamped = {name: value for name, value in notification.items() if name not in ("Timestamp", "Sign")}
    if key:
        expires = int(now if now is not None else time.time()) + VALIDITY_SECONDS
        stamped["Timestamp"] = expires
        stamped["Sign"] = sign(expires, key)
    return stamped


def _stamp_cmq(document: dict[str, Any], key: str | None, now: float | None) -> dict[str, Any]:
    inner = stamp_fields(decode(document["msgBody"].encode()), key, now)
    return {**document, "msgBody": orjson.dumps(inner).decode()}


def _stamp_api_response(document: dict[str, Any], key: str | None, now: float | None) -> dict[str, Any]:
    return {"Response": stamp_fields(document["Response"], key, now)}  # RequestId stays; the receiver drops it


#: Where each wrapper ``unwrap`` knows keeps the notification that gets verified.
STAMPERS: dict[str, Callable[[dict[str, Any], str | None, float | None], dict[str, Any]]] = {
    "none": stamp_fields,
    "cmq": _stamp_cmq,
    "api-response": _stamp_api_response,
}


def stamp(document: dict[str, Any], key: str | None, now: float | None = None) -> dict[str, Any]:
    """``document`` with the notification the receiver verifies signed (or left unsigned without a key).

    Raises ``Refused`` when a CMQ ``msgBody`` is not a JSON object, as the receiver would.
    """
    _, envelope = unwrap(document)
    return STAMPERS[envelope.wrapper](document, key, now)


def post(url: str, notification: dict[str, Any], timeout: float = 10.0) -> httpx.Response:
    return httpx.post(
        url,
        content=orjson.dumps(notification),
        headers={"Content-Type": "application/json"},
        timeout=timeout,
    )
