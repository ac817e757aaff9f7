"""``MPS_RETENTION_DAYS``: forget notifications, tasks and settled deliveries older than this, a small batch at a time.

Small batches keep each transaction short, and after each one the purge rests as long as it took, so
ingest has the database to itself half the time: a month of a million-task year took MariaDB (128 MB
buffer pool) 168 s without a rest, with ingest's p99 at 389 ms meanwhile (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mps_callback.store.engine import for_writing
from mps_callback.store.tables import deliveries, delivery_attempts, notifications, outputs, segments, subtasks, tasks

log = logging.getLogger(__name__)

BATCH = 500
#: The rest after a batch, as a share of the time the batch took.
REST = 1.0


async def purge(engine: AsyncEngine, days: int) -> dict[str, int]:
    """Delete journal rows received, tasks last heard of, and deliveries made or given up, more than ``days`` ago.

    A pending delivery is kept however old: it is still owed to its sink; so is the journal row a
    pending ``notification.received`` will carry when it is sent.
    """
    cutoff = datetime.now(UTC) - timedelta(days=days)
    writer = for_writing(engine)

    async def task_rows(connection: AsyncConnection, ids: list[Any]) -> None:
        for table in (segments, outputs, subtasks, tasks):
            await connection.execute(table.delete().where(table.c.task_id.in_(ids)))

    async def journal_rows(connection: AsyncConnection, ids: list[Any]) -> None:
        await connection.execute(notifications.delete().where(notifications.c.id.in_(ids)))

    async def delivery_rows(connection: AsyncConnection, ids: list[Any]) -> None:
        await connection.execute(delivery_attempts.delete().where(delivery_attempts.c.delivery_id.in_(ids)))
        await connection.execute(deliveries.delete().where(deliveries.c.id.in_(ids)))

    owed = sa.exists().where(deliveries.c.notification_id == notifications.c.id, deliveries.c.status == "pending")
    expired_tasks = sa.select(tasks.c.task_id).where(tasks.c.last_received_at < cutoff)
    expired = sa.select(notifications.c.id).where(notifications.c.received_at < cutoff, ~owed)
    settled = sa.select(deliveries.c.id).where(
        deliveries.c.created_at < cutoff, deliveries.c.status.in_(("delivered", "dead"))
    )
    removed_tasks = await _in_batches(writer, expired_tasks, task_rows)
    removed = {
        "notifications": await _in_batches(writer, expired, journal_rows),
        "tasks": removed_tasks,
        "deliveries": await _in_batches(writer, settled, delivery_rows),
    }
    if any(removed.values()):
        log.info("retention purge", extra={"days": days, **removed})
    return removed


async def _in_batches(
    writer: AsyncEngine,
    found: sa.Select,  # type: ignore[type-arg]
    delete: Callable[[AsyncConnection, list[Any]], Awaitable[None]],
) -> int:
    """``delete`` what ``found`` selects, :data:`BATCH` ids a transaction, resting after each as long as it
    held the database (times :data:`REST`); how many ids in all."""
    removed = 0
    while ids := await _ids(writer, found):
        started = time.monotonic()
        async with writer.begin() as connection:
            await delete(connection, ids)
        removed += len(ids)
        await asyncio.sleep((time.monotonic() - started) * REST)
    return removed


async def _ids(engine: AsyncEngine, query: sa.Select) -> list:  # type: ignore[type-arg]
    async with engine.connect() as connection:
        return [row[0] for row in await connection.execute(query.limit(BATCH))]
