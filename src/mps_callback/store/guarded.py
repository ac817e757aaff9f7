"""Schema steps that look before they act, so a migration can run again after failing part-way.

MariaDB and MySQL commit every DDL statement on its own: a migration that fails half-way
keeps the steps it had done while ``alembic_version`` still names the previous revision,
and the next run would stop at its first step ("duplicate column", "table exists"). Each
step here checks the live schema and does only what is missing. SQLite and PostgreSQL roll
DDL back with the transaction; the checks cost them nothing.

The checks ask a fresh ``Inspector`` every time: an inspector caches what it has seen, and
each step changes what there is to see.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine.reflection import Inspector


def _inspector() -> Inspector:
    return sa.inspect(op.get_bind())


def has_table(name: str) -> bool:
    """A base table called ``name`` (a view of that name is not one)."""
    return name in _inspector().get_table_names()


def has_view(name: str) -> bool:
    return name in _inspector().get_view_names()


def has_column(table: str, column: str) -> bool:
    return column in {c["name"] for c in _inspector().get_columns(table)}


def has_index(table: str, name: str) -> bool:
    return has_table(table) and name in {i["name"] for i in _inspector().get_indexes(table)}


def create_table(name: str, *elements: Any, **options: Any) -> None:
    """``op.create_table`` unless the table is there (CREATE TABLE itself is all or nothing)."""
    if not has_table(name):
        op.create_table(name, *elements, **options)


def drop_table(name: str) -> None:
    if has_table(name):
        op.drop_table(name)


def rename_table(old: str, new: str) -> None:
    """Rename the base table ``old`` to ``new``, unless that was done already."""
    if has_table(old) and not has_table(new):
        op.rename_table(old, new)


def create_index(name: str, table: str, columns: list[str], **options: Any) -> None:
    if not has_index(table, name):
        op.create_index(name, table, columns, **options)


def drop_index(name: str, table: str) -> None:
    if has_index(table, name):
        op.drop_index(name, table)


def add_columns(table: str, *columns: sa.Column[Any]) -> None:
    """Add those of ``columns`` the table lacks (MariaDB adds them one ALTER at a time)."""
    missing = [column for column in columns if not has_column(table, column.name)]
    if missing:
        with op.batch_alter_table(table) as batch:
            for column in missing:
                batch.add_column(column)


def drop_columns(table: str, names: Iterable[str]) -> None:
    present = [name for name in names if has_column(table, name)]
    if present:
        with op.batch_alter_table(table) as batch:
            for name in present:
                batch.drop_column(name)


def create_view(name: str, select: str) -> None:
    """``CREATE VIEW name AS select`` unless a view of that name is there."""
    if not has_view(name):
        op.execute(f"CREATE VIEW {name} AS\n{select}")


def drop_view(name: str) -> None:
    if has_view(name):
        op.execute(f"DROP VIEW {name}")


def column_collations(table: str) -> dict[str, str | None]:
    """Each column's collation where the database reports one (MariaDB/MySQL: when not the table's)."""
    return {c["name"]: getattr(c["type"], "collation", None) for c in _inspector().get_columns(table)}
