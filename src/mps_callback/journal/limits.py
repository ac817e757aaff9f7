"""The largest notification the database can store, known before a 200 is given.

MariaDB/MySQL refuse any statement larger than ``max_allowed_packet`` (16 MiB by default
on MariaDB) by dropping the connection, which looks like an outage. With
``NO_BACKSLASH_ESCAPES`` every ``'`` in the body is sent twice, so a 15.9 MiB word-level
ASR body can need 20 MiB on the wire. Such a body must be refused with 413 at the door
(MPS then reports the failure) rather than answered 200 and spooled forever. The server's
limit is read on every new journal connection, so raising it takes effect without a
restart. PostgreSQL (jsonb: 255 MiB) and SQLite (1 GB) are far beyond ``MPS_MAX_BODY_BYTES``.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from mps_callback.errors import Refused

log = logging.getLogger(__name__)

#: What the rest of a journal row and the INSERT around it may take besides the body.
ROW_OVERHEAD_BYTES = 64 * 1024
#: Per backend: a fixed limit, or None to read it from the server.
FIXED_LIMITS: dict[str, int | None] = {"postgresql": 255 * 1024 * 1024, "sqlite": 1_000_000_000, "mysql": None}
#: Until a MariaDB/MySQL server has been asked (it was down at start), assume its smallest
#: default (MariaDB's 16 MiB): a body spooled meanwhile must still fit once it answers.
ASSUMED_MYSQL_PACKET = 16 * 1024 * 1024
#: How much larger than received a body can become as stored: a number like ``1E15`` (4 bytes)
#: is written back as ``1000000000000000.0`` (18); whitespace and ``\u`` escapes only shrink.
WORST_GROWTH = 5


def stored_bytes(body: Any) -> int:
    """What a body takes in the INSERT statement: its JSON, with each ``'`` doubled (MySQL's escaping)."""
    encoded = orjson.dumps(body)
    return len(encoded) + encoded.count(b"'")


class RowLimit:
    """The database's limit on one row, once known (``None`` until the first connection)."""

    def __init__(self, max_body_bytes: int | None = None, dialect: str | None = None) -> None:
        self.bytes: int | None = _assumed(dialect)
        self._max_body_bytes = max_body_bytes
        self._read = False  # the limit comes from the database, not from the assumption

    async def refresh(self, connection: AsyncConnection) -> None:
        """Read the limit on a fresh connection, leaving no transaction open."""
        name = connection.dialect.name
        limit = FIXED_LIMITS.get(name)
        if limit is None and name in ("mysql", "mariadb"):
            packet = (await connection.execute(sa.text("SELECT @@max_allowed_packet"))).scalar_one()
            await connection.rollback()
            limit = int(packet) - ROW_OVERHEAD_BYTES
        if limit is not None and (limit != self.bytes or not self._read):
            self.bytes, self._read = limit, True
            self._warn_if_below_body_limit(name)

    def check(self, body: Any, delivery: Any, raw_bytes: int) -> None:
        """Refuse (413) a notification the database cannot store: its body and what is kept of its
        delivery (headers, envelope attributes), which share the row.

        The delivery record is small and measured every time (a hostile one can be megabytes of
        headers or envelope); the body only when it could come near the limit (``WORST_GROWTH``):
        the typical 5 KB notification costs a microsecond here.
        """
        if self.bytes is None:
            return
        kept = stored_bytes(delivery)
        if (raw_bytes + 1024) * WORST_GROWTH + kept < self.bytes:
            return
        needed = stored_bytes(body) + kept
        if needed > self.bytes:
            raise Refused(
                413,
                "too_large_for_database",
                f"this notification needs {needed} bytes in the database, which takes {self.bytes} "
                "(raise max_allowed_packet)",
            )

    def _warn_if_below_body_limit(self, dialect: str) -> None:
        if self.bytes is not None and self._max_body_bytes is not None and self._max_body_bytes > self.bytes:
            log.warning(
                "MPS_MAX_BODY_BYTES is larger than the database can store in one row: larger bodies get 413",
                extra={
                    "max_body_bytes": self._max_body_bytes,
                    "database_row_bytes": self.bytes,
                    "database": dialect,
                    "fix": "raise max_allowed_packet (e.g. 64M; quotes in a body count twice)",
                },
            )


def _assumed(dialect: str | None) -> int | None:
    if dialect in ("mysql", "mariadb"):
        return ASSUMED_MYSQL_PACKET - ROW_OVERHEAD_BYTES
    return FIXED_LIMITS.get(dialect or "")
