"""INSERT that skips rows whose unique key is already there, on every backend we support."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite


def insert_skipping_duplicates(dialect_name: str, table: sa.Table, key: str) -> Any:
    """``INSERT ...`` that leaves an existing row with the same ``key`` untouched."""
    if dialect_name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=[key])
    if dialect_name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=[key])
    if dialect_name in ("mysql", "mariadb"):
        # Not INSERT IGNORE: that would also turn real errors (a value too long) into warnings.
        return mysql.insert(table).on_duplicate_key_update({key: table.c[key]})
    raise NotImplementedError(f"unsupported database backend {dialect_name}")
