"""Many rows into one table with the least work per row: the projector's writes.

A batch of 200 typical notifications writes ~5,000 rows (tasks, subtasks, outputs, and a
segment per subtitle line). Through ``connection.execute(table.insert(), rows)`` SQLAlchemy
builds each row's parameters anew (``construct_params``, every column's bind processor
looked up again): about a sixth of the projector's CPU. Here the statement is compiled once
per table, columns and database, each column's bind processor is looked up once, and the rows
go to the driver as tuples (``exec_driver_sql``): the same statement and the same values,
with nothing repeated per row but the values themselves. The driver's ``executemany`` then
does what it does best: one multi-row INSERT (asyncmy), a pipelined prepared statement
(asyncpg), a C loop (sqlite3).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from mps_callback.store.upsert import insert_overwriting


@dataclass(frozen=True, slots=True)
class _Compiled:
    """One statement as the driver takes it: its SQL, and per parameter its column and bind processor."""

    sql: str
    columns: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]

    def parameters(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(
            [
                value if process is None else process(value)
                for value, process in zip(map(row.__getitem__, self.columns), self.processors, strict=True)
            ]
        )


#: (table, columns, key or None, dialect) -> the compiled statement; a handful of entries per process.
_compiled: dict[tuple[str, tuple[str, ...], str | None, sa.Dialect], _Compiled] = {}


async def insert_many(connection: AsyncConnection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """INSERT ``rows`` (dicts with the same keys: the columns written) into ``table``."""
    if rows:
        await _execute(connection, table, None, rows)


async def overwrite_many(
    connection: AsyncConnection, table: sa.Table, key: str, rows: Sequence[dict[str, Any]]
) -> None:
    """INSERT ``rows``, each replacing the columns it names of the row with the same ``key`` if there is one.

    For rows the caller has locked and rewrites whole: one statement for all of them, where an
    UPDATE per row is a round trip each.
    """
    if rows:
        await _execute(connection, table, key, rows)


async def _execute(
    connection: AsyncConnection, table: sa.Table, key: str | None, rows: Sequence[dict[str, Any]]
) -> None:
    dialect = connection.dialect
    columns = tuple(rows[0])
    cache_key = (table.name, columns, key, dialect)
    compiled = _compiled.get(cache_key) or _compiled.setdefault(cache_key, _compile(table, columns, key, dialect))
    await connection.exec_driver_sql(compiled.sql, [compiled.parameters(row) for row in rows])


def _compile(table: sa.Table, columns: tuple[str, ...], key: str | None, dialect: sa.Dialect) -> _Compiled:
    """The statement for ``columns`` compiled for ``dialect``, with no RETURNING (nothing reads it back)."""
    statement = (
        table.insert()
        if key is None
        else insert_overwriting(dialect.name, table, key, [c for c in columns if c != key])
    )
    compiled = statement.inline().compile(dialect=dialect, column_keys=list(columns))
    order = tuple(compiled.positiontup or ())
    if sorted(order) != sorted(columns):
        raise ValueError(f"{table.name}: the statement binds {order}, the rows have {columns}")
    processors = tuple(table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in order)
    return _Compiled(compiled.string, order, processors)
