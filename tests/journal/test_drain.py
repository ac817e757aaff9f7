"""The drain isolates records: one that fails is held, retried with back-off, then quarantined;
the records behind it go in; quarantined records can be put back. Real databases, real refusals."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from mps_callback.journal.drain import RetryPolicy, drain_spool
from mps_callback.journal.limits import RowLimit
from mps_callback.journal.spool import Spool
from mps_callback.store.engine import create_engine
from mps_callback.store.tables import notifications
from tests.support.bodies import journal_row
from tests.support.db import allow_inserts, migrated, query, refuse_inserts

FAST = RetryPolicy(attempts=3, first_delay_seconds=0.3, max_delay_seconds=0.3)


class FixedLimit(RowLimit):
    """A row limit that is what the test says, whatever the database answers (None: not known)."""

    def __init__(self, limit: int | None) -> None:
        super().__init__()
        self.bytes = limit

    async def refresh(self, connection: object) -> None:
        pass


def drain(spool: Spool, url: str, limit: RowLimit | None = None, policy: RetryPolicy = FAST) -> int:
    async def go() -> int:
        engine = create_engine(url)
        try:
            return await drain_spool(spool, engine, limit, policy)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def stored(url: str) -> list[str]:
    return [r.task_id for r in query(url, sa.select(notifications.c.task_id).order_by(notifications.c.id))]


def test_a_refused_record_is_held_retried_then_quarantined_and_the_rest_go_in(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    refuse_inserts(database_url, "refuse-me")
    spool = Spool(tmp_path)
    spool.write([journal_row("before"), journal_row("refuse-me"), journal_row("after")])
    spool.write([journal_row("later")])
    assert drain(spool, database_url) == 3
    assert stored(database_url) == ["before", "after", "later"]
    assert spool.files() == [] and len(spool.held()) == 1 and spool.depth() == 1
    assert spool.held()[0].attempts == 1 and spool.quarantined() == 0
    time.sleep(0.35)  # about time: the held record's back-off must pass before its next attempt
    drain(spool, database_url)  # second attempt: still refused, held again
    assert spool.held()[0].attempts == 2 and spool.quarantined() == 0
    time.sleep(0.35)  # about time: the back-off again
    drain(spool, database_url)  # third: quarantined
    assert spool.depth() == 0 and spool.quarantined() == 1
    [line] = [r for r in caplog.records if r.getMessage() == "notification quarantined"]
    assert line.task_id == "refuse-me" and "failed 3 times" in line.reason  # type: ignore[attr-defined]
    allow_inserts(database_url)
    assert spool.requeue() == (1, 0)
    assert drain(spool, database_url) == 1
    assert sorted(stored(database_url)) == ["after", "before", "later", "refuse-me"]
    assert spool.depth() == 0 and spool.quarantined() == 0


def test_a_held_record_waits_for_its_back_off(database_url: str, tmp_path: Path):
    refuse_inserts(database_url, "refuse-me")
    spool = Spool(tmp_path)
    spool.write([journal_row("refuse-me")])
    slow = RetryPolicy(attempts=3, first_delay_seconds=3600)
    drain(spool, database_url, policy=slow)
    allow_inserts(database_url)
    assert drain(spool, database_url, policy=slow) == 0  # not due for an hour
    assert spool.held()[0].attempts == 1


def test_a_record_larger_than_the_database_takes_is_quarantined_at_once(database_url: str, tmp_path: Path):
    spool = Spool(tmp_path)
    big = journal_row("too-big")
    big["body"] = {**big["body"], "Text": "'" * 5000}
    spool.write([journal_row("small-1"), big, journal_row("small-2")])
    assert drain(spool, database_url, FixedLimit(4000)) == 2
    assert stored(database_url) == ["small-1", "small-2"]
    assert spool.depth() == 0 and spool.quarantined() == 1


def test_while_the_database_is_unreachable_nothing_is_held_or_quarantined(tmp_path: Path):
    spool = Spool(tmp_path)
    spool.write([journal_row("a"), journal_row("b")])
    assert drain(spool, "postgresql://nobody@127.0.0.1:1/none") == 0
    assert spool.depth() == 2 and spool.held() == [] and spool.quarantined() == 0


def test_a_record_that_breaks_the_connection_is_held_and_the_rest_drain(tmp_path: Path):
    """MariaDB drops the connection for a statement over max_allowed_packet (16 MiB here): before the
    limit is known, such a record looks like an outage. The probe write shows the database is fine."""
    for url in migrated("mysql", tmp_path):
        packet = query(url, "SELECT @@max_allowed_packet")[0][0]
        spool = Spool(tmp_path / "spool")
        huge = journal_row("over-the-packet")
        huge["body"] = {**huge["body"], "Words": "'" * (packet // 2 + 1024)}  # doubled by escaping
        spool.write([journal_row("first"), huge, journal_row("last")])
        assert drain(spool, url, FixedLimit(None)) == 2  # limit unknown: the database's answer decides
        assert stored(url) == ["first", "last"]
        assert [held.attempts for held in spool.held()] == [1]
        time.sleep(0.35)  # about time: the held record's back-off must pass before its next attempt
        assert drain(spool, url) == 0  # once the limit is read, it is set aside at once, with its reason
        assert spool.held() == [] and spool.quarantined() == 1


def test_a_spool_file_from_an_older_release_still_drains(database_url: str, tmp_path: Path):
    """Spool rows written before migration 0003 lack confirmation and body_bytes."""
    spool = Spool(tmp_path)
    new = {**journal_row("new"), "confirmation": None, "body_bytes": 10}
    spool.write([journal_row("old"), new])
    assert drain(spool, database_url) == 2
    assert sorted(stored(database_url)) == ["new", "old"]
