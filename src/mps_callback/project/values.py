"""Field values as MPS sends them: what counts as a text, shared by every reader.

Integers are read with ``store.types.whole_number``, the one integer helper of the package.
"""

from __future__ import annotations

from typing import Any


def text(value: Any) -> str | None:
    """A text field: an empty string is as absent as a missing one."""
    return value if isinstance(value, str) and value != "" else None
