"""Query and path parameter types of the query API: what a request may ask, checked before SQL runs.

Every refusal is a 4xx that says what is allowed, never a database error turned 500: an
unknown value answers 422 naming the allowed ones, an instant the databases cannot hold
answers 422, and NUL (which PostgreSQL refuses in any text value) never reaches a query.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal, get_args

from fastapi import HTTPException, Request
from pydantic import AfterValidator, BeforeValidator, WithJsonSchema

from mps_callback.project.extractors import FAMILIES

#: ``status`` filter values: MPS's two task states, and ours for "a subtask failed or an ErrCode".
TaskStatus = Literal["PROCESSING", "FINISH", "failed"]
_STATUS_SPELLINGS = {value.lower(): value for value in get_args(TaskStatus)}


def _status_spelling(value: object) -> object:
    """``finish`` and ``Failed`` still mean what they always did (the filter was case-insensitive)."""
    return _STATUS_SPELLINGS.get(value.lower(), value) if isinstance(value, str) else value


StatusFilter = Annotated[TaskStatus, BeforeValidator(_status_spelling)]

#: Segment kinds the family table names (project/extractors); kept in step with it, never listed by hand.
KNOWN_SEGMENT_KINDS: tuple[str, ...] = tuple(
    sorted({kind for family in FAMILIES.values() for kind in family.segments.values()})
)

#: A time-ranged list no family names becomes segments of kind ``<family>.<list>`` (project/walk.py):
#: such kinds always hold a dot, and no named kind does.
UNNAMED_SEGMENT_KIND = re.compile(r"^[^.]+\..+$")


def _segment_kind(value: str) -> str:
    if value in KNOWN_SEGMENT_KINDS or UNNAMED_SEGMENT_KIND.match(value):
        return value
    raise ValueError(
        f"kind must be one of {', '.join(KNOWN_SEGMENT_KINDS)}; or <family>.<list> for a list no family names"
    )


SegmentKind = Annotated[
    str,
    AfterValidator(_segment_kind),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "enum": list(KNOWN_SEGMENT_KINDS)},
                {"type": "string", "pattern": UNNAMED_SEGMENT_KIND.pattern},
            ]
        }
    ),
]


def _utc(value: datetime) -> datetime:
    """The instant in UTC (a time without offset is taken as UTC), or a 422 when UTC cannot hold it.

    ``9999-12-31T23:59:59-23:59`` is a valid ISO 8601 time that lies past year 9999 in UTC:
    converting it, for the comparison in SQL, overflowed into a 500.
    """
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("instant out of range once converted to UTC (years 1 to 9999)") from None


UtcInstant = Annotated[datetime, AfterValidator(_utc)]


def utc_or_none(value: datetime) -> datetime | None:
    """:func:`_utc` for values that do not come through a parameter (a cursor's instant); None when out of range."""
    try:
        return _utc(value)
    except ValueError:
        return None


async def refuse_nul(request: Request) -> None:
    """No NUL in any path or query parameter (router dependency, before any SQL).

    PostgreSQL refuses U+0000 in text, so a NUL reaching a query was a 500 there. Intake
    refuses NUL too, so no stored TaskId holds one: a path answers 404, a query 422.
    """
    for name, value in request.path_params.items():
        if isinstance(value, str) and "\x00" in value:
            raise HTTPException(404, f"no such {name}: identifiers never contain NUL")
    for name, value in request.query_params.multi_items():
        if "\x00" in value or "\x00" in name:
            raise HTTPException(422, f"query parameter {name!r} contains NUL")
