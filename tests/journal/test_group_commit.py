"""The journal on every backend: group commit, dedupe under concurrency, failures isolated."""

import asyncio
import tempfile
from datetime import UTC, datetime

import sqlalchemy as sa

from mps_callback.errors import JournalUnavailable
from mps_callback.journal.entry import SPOOLED, JournalEntry
from mps_callback.journal.group_commit import GroupCommitJournal
from mps_callback.journal.spool import Spool
from mps_callback.mps import Envelope, dedupe_key
from mps_callback.store.engine import create_engine
from mps_callback.store.tables import notifications
from mps_callback.verify.shape import recognise
from tests.support.db import query, refuse_inserts


def entry(task_id: str, **extra: object) -> JournalEntry:
    body = {"NotificationType": "ProcessEof", "TaskId": task_id, "ProcessEofInfo": {"ErrCode": 0}, **extra}
    return JournalEntry(
        received_at=datetime.now(UTC),
        shape=recognise(body),
        body=body,
        signature="unsigned",
        confirmation=None,
        channel="test",
        envelope=Envelope(),
        delivery={},
        dedupe_key=dedupe_key(body),
        raw_bytes=len(str(body)),
    )


async def append_all(url: str, entries: list[JournalEntry], spool: Spool | None = None) -> list:
    engine = create_engine(url)
    journal = GroupCommitJournal(engine, spool or Spool(tempfile.mkdtemp()))
    journal.start()
    try:
        return await asyncio.gather(*(journal.append(e) for e in entries), return_exceptions=True)
    finally:
        await journal.close()
        await engine.dispose()


def test_dedupe_key_ignores_timestamp_sign_and_key_order():
    a = {"NotificationType": "ProcessEof", "TaskId": "t", "Timestamp": 1, "Sign": "a" * 32}
    b = {"TaskId": "t", "NotificationType": "ProcessEof", "Timestamp": 2, "Sign": "b" * 32}
    c = {"TaskId": "t", "NotificationType": "ProcessEof", "SessionId": "other"}
    assert dedupe_key(a) == dedupe_key(b) != dedupe_key(c)


def test_concurrent_distinct_notifications_share_commits(database_url: str):
    receipts = asyncio.run(append_all(database_url, [entry(f"task-{i}") for i in range(200)]))
    assert all(not r.duplicate for r in receipts)
    assert len({r.notification_id for r in receipts}) == 200
    rows = query(database_url, sa.select(notifications.c.id, notifications.c.task_id, notifications.c.batch_id))
    assert sorted(r.id for r in rows) == sorted(r.notification_id for r in receipts)
    batches = {r.batch_id for r in rows}
    assert len(batches) < 50, f"200 concurrent appends took {len(batches)} commits"


def test_concurrent_copies_are_stored_once(database_url: str):
    copies = [entry("same-task", Timestamp=1000 + i, Sign=f"{i:032x}") for i in range(20)]
    receipts = asyncio.run(append_all(database_url, copies))
    assert len({r.notification_id for r in receipts}) == 1
    assert sum(not r.duplicate for r in receipts) == 1
    assert query(database_url, "SELECT COUNT(*) FROM notifications")[0][0] == 1


def test_copies_from_separate_journals_are_stored_once(database_url: str):
    """Two processes' journals racing on one notification: the unique key decides, both get 200."""

    async def race() -> list:
        return await asyncio.gather(
            append_all(database_url, [entry("raced")]), append_all(database_url, [entry("raced")])
        )

    first, second = asyncio.run(race())
    assert first[0].notification_id == second[0].notification_id
    assert sorted([first[0].duplicate, second[0].duplicate]) == [False, True]
    assert query(database_url, "SELECT COUNT(*) FROM notifications")[0][0] == 1


def test_a_row_the_database_refuses_is_spooled_alone(database_url: str, tmp_path):
    refuse_inserts(database_url, "refuse-me")
    spool = Spool(tmp_path / "spool")
    results = asyncio.run(append_all(database_url, [entry("fine-1"), entry("refuse-me"), entry("fine-2")], spool))
    assert results[1] == SPOOLED
    assert not results[0].duplicate and not results[2].duplicate and results[0].notification_id
    stored = {r.task_id for r in query(database_url, sa.select(notifications.c.task_id))}
    assert stored == {"fine-1", "fine-2"}
    [spooled] = spool.files()
    rows, damaged = spool.read(spooled)
    assert damaged == [] and [row["task_id"] for row in rows] == ["refuse-me"]


def test_when_the_spool_cannot_take_it_either_the_request_fails(database_url: str, tmp_path):
    refuse_inserts(database_url, "refuse-me")
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the spool directory should be")
    results = asyncio.run(append_all(database_url, [entry("refuse-me")], Spool(blocker / "spool")))
    assert isinstance(results[0], JournalUnavailable)
