"""The ways a notification's signature goes wrong, shared by every door's security tests.

Each case spoils a notification signed with ``key`` and names what the 401 (or the door's refusal) says.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mps_callback.verify.signature import sign

Notification = dict[str, Any]


def _without_signature(n: Notification, _key: str) -> Notification:
    return {k: v for k, v in n.items() if k not in ("Sign", "Timestamp")}


def _forged(n: Notification, _key: str) -> Notification:
    return {**n, "Sign": sign(n["Timestamp"], "guessed-key")}


def _replayed(n: Notification, _key: str) -> Notification:
    """A genuine Sign moved to another Timestamp."""
    return {**n, "Timestamp": n["Timestamp"] - 10}


def _expired(n: Notification, key: str) -> Notification:
    return {**n, "Timestamp": 1_000_000_000, "Sign": sign(1_000_000_000, key)}


def _far_future(n: Notification, key: str) -> Notification:
    return {**n, "Timestamp": 99_999_999_999, "Sign": sign(99_999_999_999, key)}


#: case -> (how it spoils a notification signed with the key given, what the refusal says)
SIGNATURE_CASES: dict[str, tuple[Callable[[Notification, str], Notification], str]] = {
    "unsigned": (_without_signature, "unsigned"),
    "forged": (_forged, "does not match"),
    "replayed": (_replayed, "does not match"),
    "expired": (_expired, "expired"),
    "far-future": (_far_future, "future"),
}
