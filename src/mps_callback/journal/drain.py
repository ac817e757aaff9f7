"""Move spooled notifications into the journal, oldest first, once the database answers."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from mps_callback.journal.spool import Spool, encode_line
from mps_callback.journal.write import write_rows
from mps_callback.store.engine import for_writing
from mps_callback.store.errors import is_transient

log = logging.getLogger(__name__)


#: Records per drain transaction: an outage leaves many small files (one per batch).
DRAIN_BATCH = 500


async def drain_spool(spool: Spool, engine: AsyncEngine) -> int:
    """Journal every spooled notification (duplicates are skipped); return how many were moved.

    Files are taken oldest first, several per transaction. Stops at the first transient
    database error (the spool keeps the rest for the next try). A record the database
    refuses for good is quarantined with a log line.
    """
    moved = 0
    writer = for_writing(engine)
    with spool.exclusive() as mine:
        if not mine:
            return 0
        files = spool.files()
        while files:
            group, rows = [], []
            while files and len(rows) < DRAIN_BATCH:
                path = files.pop(0)
                found, damaged = spool.read(path)
                if damaged:
                    spool.quarantine(path, damaged, "checksum or JSON damaged")
                group.append((path, found))
                rows.extend(found)
            try:
                if rows:
                    await write_rows(writer, rows)
            except Exception as error:
                if is_transient(error):
                    return moved
                for path, found in group:  # one record is refused: find it, keep the rest
                    await _one_by_one(spool, writer, path, found)
            for path, _ in group:
                spool.remove(path)
            moved += len(rows)
    if moved:
        log.info("spool drained", extra={"records": moved})
    return moved


async def _one_by_one(spool: Spool, engine: AsyncEngine, path: Path, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        try:
            await write_rows(engine, [row])
        except Exception as error:
            if is_transient(error):
                raise
            spool.quarantine(path, [encode_line({**row, "received_at": row["received_at"].isoformat()}).rstrip()],
                             f"database refused it: {type(error).__name__}")
