"""Group commit: the requests that arrive while one transaction runs share the next one.

A commit costs an fsync (milliseconds on a real disk); a row costs microseconds. One
writer task per process takes everything waiting, writes it in one transaction, and
wakes each request with its row id, so a burst of N notifications costs ~1 fsync, not N.

When the database does not take a batch within the budget (retrying transient errors
with back-off), the batch goes to the local spool instead; a request whose batch has not
finished within the budget spools itself. Only when the spool fails too does a request
get ``JournalUnavailable`` (503, so MPS retries).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_exponential

from mps_callback import metrics
from mps_callback.errors import JournalUnavailable
from mps_callback.journal.entry import SPOOLED, JournalEntry, Receipt
from mps_callback.journal.limits import RowLimit
from mps_callback.journal.spool import Spool
from mps_callback.journal.write import write_batch
from mps_callback.store.engine import for_writing
from mps_callback.store.errors import describe, is_record_refusal
from mps_callback.store.outbox import NO_OUTBOX, Outbox

log = logging.getLogger(__name__)

MAX_BATCH = 500
DEFAULT_BUDGET_SECONDS = 2.0
#: Once the database has failed, batches go straight to the spool and the database is
#: probed this often, with one short attempt, instead of every batch waiting out the budget.
PROBE_INTERVAL_SECONDS = 1.0
PROBE_TIMEOUT_SECONDS = 0.5
#: How long a failed write makes /readyz report the database down.
FAILURE_MEMORY_SECONDS = 5.0
#: Batches in flight at once. While one waits for its commit's fsync the next is already
#: on the wire; MySQL and PostgreSQL merge the fsyncs of concurrent commits. SQLite has one
#: writer, so a second batch would only wait for the lock.
IN_FLIGHT = {"sqlite": 1}
DEFAULT_IN_FLIGHT = 4

Pending = tuple[JournalEntry, "asyncio.Future[Receipt]"]


class GroupCommitJournal:
    def __init__(
        self,
        engine: AsyncEngine,
        spool: Spool,
        budget_seconds: float = DEFAULT_BUDGET_SECONDS,
        max_batch: int = MAX_BATCH,
        limit: RowLimit | None = None,
        outbox: Outbox = NO_OUTBOX,
    ) -> None:
        self._engine = for_writing(engine)
        self.outbox = outbox  # each new notification's notification.received, in its commit
        self.limit = limit or RowLimit(dialect=engine.dialect.name)
        self._last_failure: tuple[float, str] | None = None
        self._spool = spool
        self._budget = budget_seconds
        self._max_batch = max_batch
        self._pending: list[Pending] = []
        self._wakeup = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._down_since: float | None = None  # set while the database is failing
        self._next_probe = 0.0
        self._writers: asyncio.Queue[_Writer] = asyncio.Queue()
        for _ in range(IN_FLIGHT.get(engine.dialect.name, DEFAULT_IN_FLIGHT)):
            self._writers.put_nowait(_Writer(self._engine, self.limit, outbox))
        self._in_flight: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._writer = asyncio.create_task(self._run(), name="journal-group-commit")

    async def close(self) -> None:
        """Flush what is waiting, then stop: the last requests of a shutdown still get their commit."""
        deadline = time.monotonic() + self._budget + 5
        # A bounded poll at shutdown only: an Event set by every batch would cost each commit.
        while (self._pending or self._in_flight) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        while not self._writers.empty():
            await self._writers.get_nowait().close()

    def recent_failure(self, within_seconds: float = FAILURE_MEMORY_SECONDS) -> str | None:
        """Why the last write failed, if it failed within ``within_seconds``: the database counts as down.

        Remembered for a while rather than until the next success, because with no traffic
        there is no next write to clear it; an ongoing outage keeps refreshing it.
        """
        if self._last_failure is None or time.monotonic() - self._last_failure[0] > within_seconds:
            return None
        return self._last_failure[1]

    def note_failure(self, reason: str) -> None:
        """A write outside the group commit (the spool drain) failed on the database."""
        self._last_failure = (time.monotonic(), reason)

    async def append(self, entry: JournalEntry) -> Receipt:
        """Wait until ``entry`` is committed or spooled (at most about the budget) and return its receipt.

        A body the database cannot store is refused here (413), before anything is promised.
        """
        self.limit.check(entry.body, entry.delivery, entry.raw_bytes)
        future: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        self._pending.append((entry, future))
        self._wakeup.set()
        try:
            return await asyncio.wait_for(asyncio.shield(future), self._budget + 0.5)
        except TimeoutError:
            log.warning("journal slower than its budget; spooling", extra={"task_id": entry.shape.task_id})
            return await self._spool_entries([entry])  # the writer may still commit it: the dedupe key absorbs that

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                writer = await self._writers.get()  # what arrives while we wait joins this batch
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                task = asyncio.create_task(self._commit_with(writer, batch))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)

    async def _commit_with(self, writer: _Writer, batch: list[Pending]) -> None:
        try:
            await self._commit(writer, batch)
        finally:
            self._writers.put_nowait(writer)

    async def _commit(self, writer: _Writer, batch: list[Pending]) -> None:
        entries = [entry for entry, _ in batch]
        if self._down_since is not None and time.monotonic() < self._next_probe:
            await self._resolve_with_spool(batch)
            return
        started = time.perf_counter()
        try:
            if self._down_since is None:
                receipts = await self._write_within_budget(writer, entries)
            else:
                receipts = await asyncio.wait_for(writer.write(entries), PROBE_TIMEOUT_SECONDS)
        except Exception as error:
            refused = is_record_refusal(error)
            if len(batch) > 1 and refused:  # one refused row: find it, keep the rest
                for single in batch:
                    await self._commit(writer, [single])
                return
            if not refused:
                self._mark_down(describe(error))
            log.error("journal write failed; spooling", extra={"error": describe(error), "batch": len(batch)})
            await self._resolve_with_spool(batch)
            return
        if self._down_since is not None:
            log.info("database back", extra={"down_seconds": round(time.monotonic() - self._down_since, 3)})
            self._down_since = None
        metrics.JOURNAL_COMMIT_SECONDS.observe(time.perf_counter() - started)
        metrics.JOURNAL_BATCH_SIZE.observe(len(batch))
        for (_, future), receipt in zip(batch, receipts, strict=True):
            if not future.done():
                future.set_result(receipt)

    def _mark_down(self, reason: str) -> None:
        self.note_failure(reason)
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
        self._next_probe = now + PROBE_INTERVAL_SECONDS

    async def _write_within_budget(self, writer: _Writer, entries: list[JournalEntry]) -> list[Receipt]:
        deadline = time.monotonic() + self._budget
        retrying = AsyncRetrying(
            stop=stop_after_delay(self._budget),
            wait=wait_exponential(multiplier=0.05, max=0.5),
            retry=retry_if_exception(lambda error: not is_record_refusal(error)),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                remaining = max(deadline - time.monotonic(), 0.05)
                receipts = await asyncio.wait_for(writer.write(entries), remaining)
        return receipts

    async def _resolve_with_spool(self, batch: list[Pending]) -> None:
        waiting = [(entry, future) for entry, future in batch if not future.done()]
        if not waiting:
            return
        try:
            receipt = await self._spool_entries([entry for entry, _ in waiting])
        except JournalUnavailable as error:
            for _, future in waiting:
                if not future.done():
                    future.set_exception(error)
            return
        for _, future in waiting:
            if not future.done():
                future.set_result(receipt)

    async def _spool_entries(self, entries: list[JournalEntry]) -> Receipt:
        try:
            await asyncio.to_thread(self._spool.write, [entry.row() for entry in entries])
        except Exception as error:  # disk full, read-only, or a row that cannot be encoded: never a 500
            reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)[:200]
            log.error(
                "spool write failed: the notification is refused with 503",
                extra={"error": f"{type(error).__name__}: {reason}", "records": len(entries)},
            )
            raise JournalUnavailable("database and spool both unavailable") from None
        metrics.SPOOLED.inc(len(entries))
        return SPOOLED


class _Writer:
    """One connection kept open for journal writes, dropped and reopened after any failure.

    Checking a connection out of the pool for every batch would cost a ping and a
    reset-on-return ROLLBACK: two extra round trips per commit on the hottest path.
    """

    def __init__(self, engine: AsyncEngine, limit: RowLimit, outbox: Outbox) -> None:
        self._engine = engine
        self._limit = limit
        self._outbox = outbox
        self._connection: AsyncConnection | None = None

    async def write(self, entries: list[JournalEntry]) -> list[Receipt]:
        """Write on the kept connection; a new connection first reads the database's row limit."""
        try:
            if self._connection is None:
                self._connection = await self._engine.connect()
                await self._limit.refresh(self._connection)
            return await write_batch(self._connection, entries, self._outbox)
        except BaseException:  # failed or cancelled mid-transaction: never reuse that connection
            broken, self._connection = self._connection, None
            if broken is not None:
                await _discard(broken)
            raise

    async def close(self) -> None:
        if self._connection is not None:
            await _discard(self._connection)
            self._connection = None


async def _discard(connection: AsyncConnection) -> None:
    """Drop a broken connection, waiting a moment at most: it must never hold up the journal."""
    # broken already (or we are being cancelled): dropping it is all that matters
    with contextlib.suppress(BaseException):
        await asyncio.wait_for(connection.invalidate(), 2)
