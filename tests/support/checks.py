"""Assertions shared by every kind of test: waiting for a condition, and secrets kept out of output."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

#: How often ``wait_until`` looks again: short, since each look is cheap next to the waits it replaces.
POLL_SECONDS = 0.05


def wait_until(condition: Callable[[], Any], seconds: float, what: str) -> None:
    """Return as soon as ``condition()`` is true; fail after ``seconds`` saying what never happened."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(POLL_SECONDS)


def assert_no_secret(places: Mapping[str, Any], secrets: Mapping[str, str] | Iterable[str]) -> None:
    """No secret appears in any of ``places`` (name -> text, bytes, or rows; rows are compared as text).

    One failure names every secret found and where, so a leak shows its whole extent at once.
    """
    named = dict(secrets) if isinstance(secrets, Mapping) else {secret: secret for secret in secrets}
    assert all(named.values()), "an empty secret would be found everywhere"
    found = [
        f"{name} in {place}"
        for place, written in places.items()
        for name, secret in named.items()
        if secret in _text(written)
    ]
    assert not found, "secrets written out: " + ", ".join(found)


def _text(written: Any) -> str:
    if isinstance(written, bytes):
        return written.decode(errors="replace")
    if isinstance(written, str):
        return written
    return " ".join(str(tuple(row)) if not isinstance(row, str) else row for row in written)
