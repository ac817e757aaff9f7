"""Move spooled notifications into the journal, oldest first, once the database takes writes.

Two kinds of failure, two answers (see ``store.errors``):
- the database cannot take writes (down, read-only, wrong password, missing table, full):
  stop, keep everything in the spool, try again on the next pass, however long it takes;
- one record fails while the database takes writes (the database refused the data, or the
  record's write broke the connection while a probe write right after it succeeded): that
  record alone is held aside and retried with back-off; after ``RetryPolicy.attempts``
  attempts it is quarantined. The records behind it go on.

A record the database cannot store at all (larger than its row limit) is quarantined at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from mps_callback import metrics
from mps_callback.journal.limits import RowLimit, stored_bytes
from mps_callback.journal.spool import Spool, encode_line, written_ns
from mps_callback.journal.write import write_rows
from mps_callback.store.engine import for_writing
from mps_callback.store.errors import database_fault, describe, is_record_refusal
from mps_callback.store.outbox import NO_OUTBOX, Outbox

log = logging.getLogger(__name__)

#: Records per drain transaction: an outage leaves many small files (one per batch).
DRAIN_BATCH = 500


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often one failing record is tried before it is quarantined: 2, 4, 8 ... s, ~9 minutes in all."""

    attempts: int = 8
    first_delay_seconds: float = 2.0
    max_delay_seconds: float = 300.0

    def delay(self, attempts: int) -> float:
        return min(self.first_delay_seconds * 2.0 ** (attempts - 1), self.max_delay_seconds)


class DatabaseDown(Exception):
    """The database does not take writes now: the spool keeps what it has."""


async def drain_spool(
    spool: Spool,
    engine: AsyncEngine,
    limit: RowLimit | None = None,
    policy: RetryPolicy = RetryPolicy(),
    on_database_down: Callable[[str], None] | None = None,
    outbox: Outbox = NO_OUTBOX,
) -> int:
    """Journal spooled notifications (duplicates are skipped); return how many went in.

    Fresh spool files go first, several per transaction, then the held records that are due.
    ``on_database_down`` hears why, when the database did not take writes.
    """
    drainer = _Drainer(spool, for_writing(engine), limit or RowLimit(dialect=engine.dialect.name), policy, outbox)
    with spool.exclusive() as mine:
        if not mine:
            return 0
        try:
            await drainer.refresh_limit()
            await drainer.fresh()
            await drainer.held()
        except DatabaseDown as down:
            log.debug("spool drain waits for the database", extra={"error": str(down)})
            if on_database_down is not None:
                on_database_down(str(down))
    if drainer.moved:
        log.info("spool drained", extra={"records": drainer.moved, "left": spool.depth()})
    return drainer.moved


@dataclass(slots=True)
class _Pending:
    """One spooled record on its way in, and where it came from."""

    row: dict[str, Any]
    spooled_ns: int
    attempts: int = 0


class _Drainer:
    def __init__(self, spool: Spool, engine: AsyncEngine, limit: RowLimit, policy: RetryPolicy, outbox: Outbox) -> None:
        self.spool = spool
        self.outbox = outbox  # a spooled notification's notification.received is written when it is journaled
        self.engine = engine
        self.limit = limit
        self.policy = policy
        self.moved = 0

    async def refresh_limit(self) -> None:
        """Ask the database its row limit before judging any record too large for it."""
        try:
            async with self.engine.connect() as connection:
                await self.limit.refresh(connection)
        except Exception as error:
            raise DatabaseDown(describe(error)) from error

    async def fresh(self) -> None:
        files = self.spool.files()
        while files:
            group: list[tuple[Path, list[_Pending]]] = []
            size = 0
            while files and size < DRAIN_BATCH:
                path, records = self._readable(files.pop(0))
                group.append((path, records))
                size += len(records)
            await self._write_group(group)

    async def held(self) -> None:
        now = time.time_ns()
        for held in self.spool.held():
            if held.due_ns > now:
                break
            _, records = self._readable(held.path, held.attempts, held.spooled_ns)
            for record in records:
                await self._write_one(record)
            self.spool.remove(held.path)

    def _readable(self, path: Path, attempts: int = 0, spooled_ns: int | None = None) -> tuple[Path, list[_Pending]]:
        """The records of one file that can go in; damaged and oversized ones are quarantined and
        taken out of the file at once, so a later pass never quarantines them twice."""
        rows, damaged = self.spool.read(path)
        if damaged:
            self._quarantine(damaged, "damaged", "checksum or JSON damaged")
        storable = [row for row in rows if self._storable(row)]
        if damaged or len(storable) < len(rows):
            path = self.spool.replace(path, storable) or path
        stamp = spooled_ns if spooled_ns is not None else written_ns(path)
        return path, [_Pending(row, stamp, attempts) for row in storable]

    def _storable(self, row: dict[str, Any]) -> bool:
        if self.limit.bytes is None:
            return True
        needed = stored_bytes(row["body"]) + stored_bytes(row.get("delivery"))
        if needed <= self.limit.bytes:
            return True
        self._quarantine(
            [encode_line(row)], "too_large", f"needs {needed} bytes, the database takes {self.limit.bytes}", row
        )
        return False

    async def _write_group(self, group: list[tuple[Path, list[_Pending]]]) -> None:
        records = [record for _, found in group for record in found]
        try:
            if records:
                await write_rows(self.engine, [record.row for record in records], self.outbox)
            self.moved += len(records)
        except Exception as error:
            if not is_record_refusal(error):
                await self._probe(error)
            await self._one_by_one(group)
        for path, _ in group:
            self.spool.remove(path)

    async def _one_by_one(self, group: list[tuple[Path, list[_Pending]]]) -> None:
        """Each record alone; if the database goes away part-way, the files keep only what is left."""
        for index, (_, records) in enumerate(group):
            for position, record in enumerate(records):
                try:
                    await self._write_one(record)
                except DatabaseDown:
                    self._keep_unwritten(group, index, position)
                    raise

    async def _write_one(self, record: _Pending) -> None:
        try:
            await write_rows(self.engine, [record.row], self.outbox)
        except Exception as error:
            if not is_record_refusal(error):
                await self._probe(error)
            self._count_failure(record, describe(error))
            return
        self.moved += 1

    async def _probe(self, error: BaseException) -> None:
        """Raise DatabaseDown unless the database takes a write now: then ``error`` was the record's doing."""
        if reason := await database_fault(self.engine, error):
            raise DatabaseDown(reason) from error

    def _count_failure(self, record: _Pending, reason: str) -> None:
        attempts = record.attempts + 1
        task_id = record.row.get("task_id")
        if attempts >= self.policy.attempts:
            self._quarantine([encode_line(record.row)], "refused", f"failed {attempts} times: {reason}", record.row)
            return
        self.spool.hold(record.row, attempts, self.policy.delay(attempts), record.spooled_ns)
        log.warning(
            "spooled record failed on its own; held for a later attempt",
            extra={"task_id": task_id, "attempts": attempts, "error": reason},
        )

    def _keep_unwritten(self, group: list[tuple[Path, list[_Pending]]], index: int, position: int) -> None:
        """Rewrite the group's files so that they hold only the records not yet handled."""
        for number, (path, records) in enumerate(group):
            if number < index:
                self.spool.remove(path)
            elif number == index:
                self.spool.replace(path, [record.row for record in records[position:]])

    def _quarantine(self, lines: list[bytes], reason_code: str, reason: str, row: dict[str, Any] | None = None) -> None:
        self.spool.quarantine(lines, reason)
        metrics.QUARANTINED.labels(reason_code).inc(len(lines))
        if row is not None:
            log.error(
                "notification quarantined",
                extra={"task_id": row.get("task_id"), "reason": reason, "dedupe_key": row.get("dedupe_key")},
            )
