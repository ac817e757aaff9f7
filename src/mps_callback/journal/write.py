"""One transaction that inserts journal rows, each dedupe key once."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mps_callback.journal.entry import JournalEntry, Receipt
from mps_callback.store.outbox import NO_OUTBOX, Outbox
from mps_callback.store.tables import notifications
from mps_callback.store.upsert import insert_skipping_duplicates

#: Bodies per INSERT statement, as asyncmy's executemany splits (``max_stmt_length``): well inside the smallest
#: ``max_allowed_packet`` a MariaDB server ships with.
STATEMENT_BYTES = 1_024_000
#: Spool files written by an older release lack these: one INSERT needs the same keys in every row.
COLUMNS_ADDED_SINCE_0001 = {"confirmation": None, "body_bytes": 0}


async def write_rows(
    target: AsyncEngine | AsyncConnection, rows: list[dict[str, Any]], outbox: Outbox = NO_OUTBOX
) -> tuple[str, dict[str, tuple[int, str]]]:
    """Insert ``rows`` (skipping dedupe keys already there); return the batch id and, per key, (id, writer batch).

    Rows are tagged with this batch's id, so a row found afterwards with another batch's
    id was already there, or was written by another process at the same time. The rows this
    batch wrote (not the duplicates) owe ``outbox`` their ``notification.received``, in the
    same transaction.
    """
    batch_id = uuid.uuid4().hex
    unique: dict[str, dict[str, Any]] = {}
    for row in rows:  # in arrival order, the first of each key
        unique.setdefault(row["dedupe_key"], {**COLUMNS_ADDED_SINCE_0001, **row, "batch_id": batch_id})
    if isinstance(target, AsyncEngine):  # an engine opens a connection; a connection, a transaction
        async with target.begin() as connection:
            return batch_id, await _insert(connection, unique, outbox)
    async with target.begin():
        return batch_id, await _insert(target, unique, outbox)


async def _insert(
    connection: AsyncConnection, unique: dict[str, dict[str, Any]], outbox: Outbox
) -> dict[str, tuple[int, str]]:
    """The rows in, then (id, writer batch) of every key, whoever wrote it; the new ones' events.

    The INSERT returns what it wrote (MariaDB also the rows its no-op update touched), so the
    SELECT is only for keys it did not return: duplicates, which are rare.
    """
    statement = insert_skipping_duplicates(connection.dialect.name, notifications, "dedupe_key")
    columns = (notifications.c.dedupe_key, notifications.c.id, notifications.c.batch_id)
    stored: dict[str, tuple[int, str]] = {}
    if connection.dialect.insert_executemany_returning:
        for rows in statements_of(list(unique.values())):
            written = await connection.execute(statement.returning(*columns), rows)
            stored.update({row.dedupe_key: (row.id, row.batch_id) for row in written})
    else:
        await connection.execute(statement, list(unique.values()))
    missing = [key for key in unique if key not in stored]
    if missing:
        found = await connection.execute(sa.select(*columns).where(notifications.c.dedupe_key.in_(missing)))
        stored.update({row.dedupe_key: (row.id, row.batch_id) for row in found})
    if outbox:
        await outbox.notifications_received(
            connection,
            [{**row, "id": stored[key][0]} for key, row in unique.items() if stored[key][1] == row["batch_id"]],
        )
    return stored


def statements_of(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """``rows`` in groups of at most :data:`STATEMENT_BYTES` of bodies (a larger row alone), in order.

    A multi-row ``INSERT ... RETURNING`` is one statement, and one statement must fit MariaDB's
    ``max_allowed_packet``, which ``RowLimit`` checks row by row only; asyncmy's own executemany
    splits the same way. Spool records older than ``body_bytes`` are measured.
    """
    groups: list[list[dict[str, Any]]] = [[]]
    size = 0
    for row in rows:
        row_bytes = row["body_bytes"] or len(orjson.dumps(row["body"]))
        if groups[-1] and size + row_bytes > STATEMENT_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(row)
        size += row_bytes
    return groups


async def write_batch(
    target: AsyncEngine | AsyncConnection, entries: list[JournalEntry], outbox: Outbox = NO_OUTBOX
) -> list[Receipt]:
    """Journal ``entries`` in one transaction (with their outbox rows); a receipt per entry, in order."""
    batch_id, stored = await write_rows(target, [entry.row() for entry in entries], outbox)
    seen: set[str] = set()
    receipts = []
    for entry in entries:
        notification_id, written_by = stored[entry.dedupe_key]
        first = entry.dedupe_key not in seen
        seen.add(entry.dedupe_key)
        receipts.append(Receipt(notification_id, duplicate=not (first and written_by == batch_id)))
    return receipts
