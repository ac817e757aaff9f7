"""Field values as MPS sends them: what counts as an integer or a text, shared by every reader."""

from __future__ import annotations

from typing import Any

INT64 = 2**63 - 1


def integer(value: Any) -> int | None:
    """An integer field: MPS sends ints (sometimes as whole floats); anything else, or out of range, is absent."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer() and abs(value) <= INT64:
        value = int(value)
    return value if isinstance(value, int) and -INT64 - 1 <= value <= INT64 else None


def text(value: Any) -> str | None:
    """A text field: an empty string is as absent as a missing one."""
    return value if isinstance(value, str) and value != "" else None
