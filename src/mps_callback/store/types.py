"""Column types that behave the same on SQLite, MariaDB/MySQL and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql

#: Autoincrementing ids: BIGINT where it matters, INTEGER on SQLite (only it autoincrements there).
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

#: Raw bodies and unknown parts. JSONB on PostgreSQL so they can be indexed and queried.
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

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
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return value.replace(tzinfo=timezone.utc) if value is not None else None
