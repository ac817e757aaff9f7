"""INSERT that skips, or overwrites, rows whose unique key is already there, on every backend we support."""

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


def insert_overwriting(dialect_name: str, table: sa.Table, key: str, columns: list[str]) -> Any:
    """``INSERT ...`` whose rows replace ``columns`` of the existing row with the same ``key``.

    Rows the caller has locked and rewrites whole: executed with many rows, it is one statement
    (asyncmy sends one multi-row INSERT), where an ``UPDATE ... WHERE key = ?`` per row is one
    round trip each.
    """
    if dialect_name in ("postgresql", "sqlite"):
        dialect = postgresql if dialect_name == "postgresql" else sqlite
        statement = dialect.insert(table)
        return statement.on_conflict_do_update(
            index_elements=[key], set_={name: statement.excluded[name] for name in columns}
        )
    if dialect_name in ("mysql", "mariadb"):
        inserted = mysql.insert(table)
        return inserted.on_duplicate_key_update({name: inserted.inserted[name] for name in columns})
    raise NotImplementedError(f"unsupported database backend {dialect_name}")
