"""Group commit: the requests that arrive while one transaction runs share the next one.

A commit costs an fsync (milliseconds on a real disk); a row costs microseconds. One
writer task per process takes everything waiting, writes it in one transaction, and
wakes each request with its row id, so a burst of N notifications costs ~1 fsync, not N.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mps_callback.errors import JournalUnavailable
from mps_callback.journal.entry import JournalEntry, Receipt
from mps_callback.store.engine import for_writing
from mps_callback.store.tables import notifications
from mps_callback.store.upsert import insert_skipping_duplicates

log = logging.getLogger(__name__)

MAX_BATCH = 500


class GroupCommitJournal:
    def __init__(
        self, engine: AsyncEngine, max_batch: int = MAX_BATCH, on_commit: Callable[[], None] | None = None
    ) -> None:
        self._engine = for_writing(engine)
        self._on_commit = on_commit
        self._max_batch = max_batch
        self._pending: list[tuple[JournalEntry, asyncio.Future[Receipt]]] = []
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._writer = asyncio.create_task(self._run(), name="journal-group-commit")

    async def close(self) -> None:
        """Flush what is waiting, then stop: the last requests of a shutdown still get their commit."""
        while self._pending:
            await asyncio.sleep(0.01)
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)

    async def append(self, entry: JournalEntry) -> Receipt:
        """Wait until ``entry`` is committed (or found already there) and return its receipt."""
        future: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        self._pending.append((entry, future))
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                await self._commit(batch)

    async def _commit(self, batch: list[tuple[JournalEntry, asyncio.Future[Receipt]]]) -> None:
        """Write ``batch``; if it fails, write its entries one by one so one bad row fails alone."""
        try:
            receipts = await write_batch(self._engine, [entry for entry, _ in batch])
        except Exception as error:  # any failure: none of the batch is known durable
            if len(batch) > 1:
                for single in batch:
                    await self._commit([single])
                return
            entry, future = batch[0]
            log.error(
                "journal write failed",
                extra={"task_id": entry.shape.task_id, "error": type(error).__name__, "detail": str(error)[:300]},
            )
            if not future.done():
                future.set_exception(JournalUnavailable(type(error).__name__))
            return
        for (_, future), receipt in zip(batch, receipts):
            if not future.done():
                future.set_result(receipt)
        if self._on_commit is not None:
            self._on_commit()


async def write_batch(engine: AsyncEngine, entries: list[JournalEntry]) -> list[Receipt]:
    """Insert ``entries`` in one transaction, each dedupe key once; return a receipt per entry.

    Rows are tagged with this batch's id, so after the insert a row found with another
    batch's id was already there (or written concurrently by another process): a duplicate.
    """
    batch_id = uuid.uuid4().hex
    first_of_key: dict[str, int] = {}
    for index, entry in enumerate(entries):
        first_of_key.setdefault(entry.dedupe_key, index)
    rows = [entries[index].row(batch_id) for index in first_of_key.values()]
    async with engine.begin() as connection:
        await connection.execute(insert_skipping_duplicates(connection.dialect.name, notifications, "dedupe_key"), rows)
        stored = await _find(connection, list(first_of_key))
    receipts = []
    for index, entry in enumerate(entries):
        notification_id, written_by = stored[entry.dedupe_key]
        is_first = first_of_key[entry.dedupe_key] == index
        receipts.append(Receipt(notification_id, duplicate=not (is_first and written_by == batch_id)))
    return receipts


async def _find(connection: AsyncConnection, keys: list[str]) -> dict[str, tuple[int, str]]:
    query = sa.select(notifications.c.dedupe_key, notifications.c.id, notifications.c.batch_id).where(
        notifications.c.dedupe_key.in_(keys)
    )
    return {row.dedupe_key: (row.id, row.batch_id) for row in await connection.execute(query)}
