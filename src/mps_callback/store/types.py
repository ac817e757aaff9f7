"""Column types that behave the same on SQLite, MariaDB/MySQL and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql

#: MariaDB's byte-exact collation that keeps trailing spaces significant.
MARIADB_IDENTIFIER_COLLATION = "utf8mb4_nopad_bin"
#: MySQL's (8.0.17 and later); earlier MySQL has only the PAD SPACE ``utf8mb4_bin``.
MYSQL_IDENTIFIER_COLLATION = "utf8mb4_0900_bin"
MYSQL_PAD_SPACE_COLLATION = "utf8mb4_bin"


def identifier_collation(dialect: sa.Dialect) -> str:
    """The collation that compares identifiers byte for byte on this MariaDB/MySQL server.

    The server default (``utf8mb4_general_ci``) folds case, so ``CaseTask-abc`` and
    ``casetask-ABC`` would be one task. ``utf8mb4_bin`` is no answer on its own: it is a
    PAD SPACE collation, so ``'abc'`` and ``'abc '`` still collide in a unique index.
    MySQL 5.7 and 8.0 before 8.0.17 have no NO PAD binary utf8mb4 collation: they get
    ``utf8mb4_bin``, byte-exact except that TaskIds differing only in trailing spaces collide.
    """
    if getattr(dialect, "is_mariadb", False):
        return MARIADB_IDENTIFIER_COLLATION
    version = dialect.server_version_info or ()
    return MYSQL_IDENTIFIER_COLLATION if tuple(version[:3]) >= (8, 0, 17) else MYSQL_PAD_SPACE_COLLATION


class Identifier(sa.TypeDecorator[str]):
    """A TaskId, SessionId, dedupe key or other key: VARCHAR compared byte for byte everywhere.

    MPS's identifiers are case-sensitive and may carry spaces. SQLite and PostgreSQL
    compare VARCHAR byte-exactly already; MariaDB/MySQL get a binary NO PAD collation.
    """

    impl = sa.String
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[str]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.VARCHAR(self.length, collation=identifier_collation(dialect)))
        return dialect.type_descriptor(sa.String(self.length))


#: The bounds of the databases' signed integers: INTEGER columns, and BIGINT (every id, ``definition``).
INT32 = 2**31 - 1
INT64 = 2**63 - 1


def whole_number(value: Any, limit: int = INT64) -> int | None:
    """``value`` as an integer a column bounded by ``limit`` holds, else None (absent, not an error).

    MPS sends integers, sometimes as whole floats; a bool, a fraction, a string or a number past
    the column is what no column can hold, so it is kept as absent rather than failing the write.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer() and abs(value) <= limit:
        value = int(value)
    return value if isinstance(value, int) and -limit - 1 <= value <= limit else None


def saturated(value: Any, limit: int) -> int | None:
    """An integer kept within ±``limit`` by clamping: a hostile 2**40 ErrCode stays non-zero (a failure), not NULL."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return min(max(value, -limit - 1), limit)


#: Autoincrementing ids: BIGINT where it matters, INTEGER on SQLite (only it autoincrements there).
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class TextJson(sa.TypeDecorator[Any]):
    """JSON kept as text: SQLite TEXT, MySQL/MariaDB LONGTEXT.

    SQLite gives a column declared ``JSON`` numeric affinity (a bare-number JSON value
    would come back as an INTEGER). MariaDB's ``JSON`` adds a ``json_valid()`` check that
    parses every row again and refuses nesting past 32 levels, which would turn a valid
    notification into a write the database refuses. Both databases' JSON functions read
    the text all the same, so it stays queryable.
    """

    impl = sa.Text
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.LONGTEXT())
        return dialect.type_descriptor(sa.Text())

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> str | None:
        return None if value is None else orjson.dumps(value).decode()

    def process_result_value(self, value: str | None, dialect: sa.Dialect) -> Any:
        return None if value is None else orjson.loads(value)


#: Raw bodies and unknown parts. JSONB on PostgreSQL so they can be indexed and queried.
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql").with_variant(TextJson(), "sqlite", "mysql", "mariadb")

#: Long text: MySQL's TEXT stops at 64 KiB; a notification can be 16 MiB.
LongText = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, microseconds kept on every database."""

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[datetime]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


def width(column: sa.Column[Any]) -> int:
    """How many characters ``column`` holds: the one place a column's size is read from ``tables.py``."""
    length = getattr(column.type, "length", None)  # sa.String and Identifier carry it
    if not isinstance(length, int):
        raise TypeError(f"{column.name} has no width (TEXT?)")
    return length
