"""One transaction that inserts journal rows, each dedupe key once."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mps_callback.journal.entry import JournalEntry, Receipt
from mps_callback.store.errors import describe, is_database_state
from mps_callback.store.tables import notifications
from mps_callback.store.upsert import insert_skipping_duplicates

#: Spool files written by an older release lack these: one INSERT needs the same keys in every row.
COLUMNS_ADDED_SINCE_0001 = {"confirmation": None, "body_bytes": 0}


async def write_rows(
    target: AsyncEngine | AsyncConnection, rows: list[dict[str, Any]]
) -> tuple[str, dict[str, tuple[int, str]]]:
    """Insert ``rows`` (skipping dedupe keys already there); return the batch id and, per key, (id, writer batch).

    Rows are tagged with this batch's id, so a row found afterwards with another batch's
    id was already there, or was written by another process at the same time.
    """
    batch_id = uuid.uuid4().hex
    unique: dict[str, dict[str, Any]] = {}
    for row in rows:  # in arrival order, the first of each key
        unique.setdefault(row["dedupe_key"], {**COLUMNS_ADDED_SINCE_0001, **row, "batch_id": batch_id})
    async with target.begin() as opened:  # an engine opens a connection; a connection, a transaction
        connection = opened if isinstance(target, AsyncEngine) else target
        statement = insert_skipping_duplicates(connection.dialect.name, notifications, "dedupe_key")
        await connection.execute(statement, list(unique.values()))
        found = await connection.execute(
            sa.select(notifications.c.dedupe_key, notifications.c.id, notifications.c.batch_id).where(
                notifications.c.dedupe_key.in_(list(unique))
            )
        )
        return batch_id, {row.dedupe_key: (row.id, row.batch_id) for row in found}


async def write_batch(target: AsyncEngine | AsyncConnection, entries: list[JournalEntry]) -> list[Receipt]:
    """Journal ``entries`` in one transaction; a receipt per entry, in order."""
    batch_id, stored = await write_rows(target, [entry.row() for entry in entries])
    seen: set[str] = set()
    receipts = []
    for entry in entries:
        notification_id, written_by = stored[entry.dedupe_key]
        first = entry.dedupe_key not in seen
        seen.add(entry.dedupe_key)
        receipts.append(Receipt(notification_id, duplicate=not (first and written_by == batch_id)))
    return receipts


async def database_fault(engine: AsyncEngine, error: BaseException) -> str | None:
    """Why ``error`` was the database's doing; None when the database takes a write now, so the
    record that failed is to blame. An error that plainly describes the database needs no probe."""
    if is_database_state(error):
        return describe(error)
    try:
        await probe_write(engine)
    except Exception as probe_error:
        return describe(probe_error)
    return None


async def probe_write(engine: AsyncEngine) -> None:
    """Raise unless the journal takes a write now.

    An UPDATE that matches no row: refused like any write by a read-only database
    (PostgreSQL 25006, MySQL 1290, SQLite's read-only file), a missing table, a lost
    connection or a wrong password, while it changes nothing. ``SELECT 1`` would pass all of those.
    """
    async with engine.begin() as connection:
        await connection.execute(
            notifications.update().where(notifications.c.id == 0).values(batch_id=notifications.c.batch_id)
        )
