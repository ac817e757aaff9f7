"""The two ways a notification does not get a 200: refused (the client's fault) or not storable."""

from __future__ import annotations

from typing import Any


class Refused(Exception):
    """A notification we will not keep: answered with ``status`` (4xx) and ``reason``.

    The reason goes back to the client and into the operator's log, so it must never
    contain a secret (a key, a token, the body itself).
    """

    def __init__(self, status: int, code: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code  # a fixed word for metrics and dashboards: unsigned, expired, not_json, ...
        self.reason = reason
        self.shape: Any = None  # the notification's Shape, when it was recognised before the refusal


class JournalUnavailable(Exception):
    """The notification could not be made durable: answered 503 so that MPS retries."""
