"""The spool on disk: whole files or none, damage found per line, drained in order, once."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from mps_callback.journal.drain import drain_spool
from mps_callback.journal.spool import Spool, decode_line, encode_line
from mps_callback.store.engine import create_engine
from mps_callback.store.tables import notifications
from tests.conftest import query


def row(task_id: str) -> dict:
    return {
        "received_at": datetime(2026, 11, 1, tzinfo=timezone.utc).isoformat(), "kind": "live", "event_type": None,
        "notification_type": "ProcessEof", "task_id": task_id, "session_id": None, "session_context": None,
        "body": {"NotificationType": "ProcessEof", "TaskId": task_id}, "signature": "unsigned", "channel": "http",
        "wrapper": "none", "message_id": None, "delivery": {}, "dedupe_key": f"{task_id:0>64}"[-64:],
    }


def drain(spool: Spool, url: str) -> int:
    async def go() -> int:
        engine = create_engine(url)
        try:
            return await drain_spool(spool, engine)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_lines_round_trip_and_damage_is_detected():
    line = encode_line(row("a")).rstrip(b"\n")
    assert decode_line(line)["task_id"] == "a"
    assert decode_line(line.replace(b'"a"', b'"b"')) is None  # checksum catches a changed byte
    assert decode_line(line[: len(line) // 2]) is None  # truncated
    assert decode_line(b"garbage") is None


def test_depth_counts_records_and_ignores_unfinished_temporary_files(tmp_path: Path):
    spool = Spool(tmp_path)
    spool.write([row("a"), row("b")])
    spool.write([row("c")])
    (tmp_path / ".20261101-1-000001-5.spool.tmp").write_bytes(b"half written")  # a crash mid-write
    assert spool.depth() == 3 and len(spool.files()) == 2


def test_drain_moves_everything_in_order_once(database_url: str, tmp_path: Path):
    spool = Spool(tmp_path)
    spool.write([row("first"), row("second")])
    spool.write([row("second"), row("third")])  # the same notification spooled twice
    assert drain(spool, database_url) == 4
    stored = query(database_url, sa.select(notifications.c.task_id).order_by(notifications.c.id))
    assert [r.task_id for r in stored] == ["first", "second", "third"]
    assert spool.depth() == 0 and spool.files() == []
    assert drain(spool, database_url) == 0


def test_damaged_records_are_quarantined_and_the_rest_drained(database_url: str, tmp_path: Path, caplog):
    spool = Spool(tmp_path)
    path = spool.write([row("good-1"), row("damaged"), row("good-2")])
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1][:20] + b"\n"
    path.write_bytes(b"".join(lines))
    assert drain(spool, database_url) == 2
    assert {r.task_id for r in query(database_url, sa.select(notifications.c.task_id))} == {"good-1", "good-2"}
    [kept] = list((tmp_path / "quarantine").iterdir())
    assert kept.read_bytes().startswith(lines[1][:20])
    assert "spool records quarantined" in caplog.text


def test_drain_waits_while_the_database_is_away(tmp_path: Path):
    spool = Spool(tmp_path / "spool")
    spool.write([row("waits")])
    assert drain(spool, "postgresql://nobody@127.0.0.1:1/none") == 0
    assert spool.depth() == 1 and not (tmp_path / "spool" / "quarantine").exists()
