"""Opaque keyset cursors: every list answers ``{items, next_cursor}`` and takes ``cursor`` back.

A cursor is the sort key of the last item given out, tagged with the list it belongs to,
as URL-safe base64 of JSON. Keyset (not offset) paging stays stable while rows arrive and
costs the same on page 1,000 as on page 1. A cursor the API did not give out, or one made
for another list, answers 400; its values are checked like any parameter (no NUL, an
instant UTC can hold) so that a forged one cannot reach SQL with what a parameter could not.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any, get_args

import orjson
from fastapi import HTTPException

from mps_callback.api.params import utc_or_none
from mps_callback.store.types import INT64

#: How long a cursor may be; ours are well under 600 characters (a TaskId is at most 255).
MAX_CURSOR_CHARS = 1200


class BadCursor(Exception):
    """The cursor's content is not what its list gives out."""


def encode(list_name: str, *key: Any) -> str:
    values = [value.isoformat() if isinstance(value, datetime) else value for value in key]
    return base64.urlsafe_b64encode(orjson.dumps([list_name, *values])).decode()


def decode(list_name: str, cursor: str, *types: Any) -> tuple[Any, ...]:
    """The key packed by :func:`encode` for ``list_name``, each value of the type given (``float | None``
    where the key column may be NULL); else 400."""
    try:
        tag, *values = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        if tag != list_name or len(values) != len(types):
            raise BadCursor
        return tuple(_typed(value, kind) for value, kind in zip(values, types, strict=True))
    except (BadCursor, ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise HTTPException(400, "cursor is not one this API gave out") from None


def _typed(value: Any, kind: Any) -> Any:
    if value is None:
        if isinstance(None, kind):  # an item whose key column is NULL (a segment without a start)
            return None
        raise BadCursor
    kind = next((named for named in get_args(kind) if named is not type(None)), kind)
    if kind is datetime and isinstance(value, str):
        instant = utc_or_none(datetime.fromisoformat(value))
        if instant is None:
            raise BadCursor
        return instant
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, int) and not isinstance(value, bool) and -INT64 - 1 <= value <= INT64:
        return value  # a BIGINT: a larger one would fail in the driver
    if kind is str and isinstance(value, str) and "\x00" not in value:
        return value
    raise BadCursor
