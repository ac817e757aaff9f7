"""The spool on disk: whole files or none, damage found per line, drained in order, once."""

from __future__ import annotations

import asyncio
import errno
import os
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa

from mps_callback.journal.drain import drain_spool
from mps_callback.journal.spool import Spool, decode_line, encode_line
from mps_callback.store.engine import create_engine
from mps_callback.store.tables import notifications
from tests.support.bodies import journal_row
from tests.support.db import query
from tests.support.service import InProcessService


def drain(spool: Spool, url: str) -> int:
    async def go() -> int:
        engine = create_engine(url)
        try:
            return await drain_spool(spool, engine)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_lines_round_trip_and_damage_is_detected():
    line = encode_line(journal_row("a")).rstrip(b"\n")
    assert decode_line(line)["task_id"] == "a"
    assert decode_line(line.replace(b'"a"', b'"b"')) is None  # checksum catches a changed byte
    assert decode_line(line[: len(line) // 2]) is None  # truncated
    assert decode_line(b"garbage") is None


def test_depth_counts_records_and_ignores_unfinished_temporary_files(tmp_path: Path):
    spool = Spool(tmp_path)
    spool.write([journal_row("a"), journal_row("b")])
    spool.write([journal_row("c")])
    (tmp_path / ".20261101-1-000001-5.spool.tmp").write_bytes(b"half written")  # a crash mid-write
    assert spool.depth() == 3 and len(spool.files()) == 2


def test_drain_moves_everything_in_order_once(database_url: str, tmp_path: Path):
    spool = Spool(tmp_path)
    spool.write([journal_row("first"), journal_row("second")])
    spool.write([journal_row("second"), journal_row("third")])  # the same notification spooled twice
    assert drain(spool, database_url) == 4
    stored = query(database_url, sa.select(notifications.c.task_id).order_by(notifications.c.id))
    assert [r.task_id for r in stored] == ["first", "second", "third"]
    assert spool.depth() == 0 and spool.files() == []
    assert drain(spool, database_url) == 0


def test_damaged_records_are_quarantined_and_the_rest_drained(database_url: str, tmp_path: Path, caplog):
    spool = Spool(tmp_path)
    path = spool.write([journal_row("good-1"), journal_row("damaged"), journal_row("good-2")])
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
    spool.write([journal_row("waits")])
    assert drain(spool, "postgresql://nobody@127.0.0.1:1/none") == 0
    assert spool.depth() == 1 and not (tmp_path / "spool" / "quarantine").exists()


# ---------------------------------------------------------------- hostile conditions


def _temporary_files(directory: Path) -> list[Path]:
    return [path for path in directory.rglob("*") if path.name.endswith(".tmp")]


def test_spool_files_are_0600_and_directories_0700_whatever_the_umask(tmp_path: Path):
    previous = os.umask(0)
    try:
        spool = Spool(tmp_path / "spool")
        written = spool.write([journal_row("a")])
        held = spool.hold(journal_row("b"), 1, 10, 0)
        quarantined = spool.quarantine([b"damaged"], "test")
        with spool.exclusive():
            pass
    finally:
        os.umask(previous)
    for path in (written, held, quarantined, spool.directory / ".drain.lock"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for directory in (spool.directory, spool.held_directory, spool.quarantine_directory):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory


def test_a_row_that_cannot_be_encoded_leaves_no_temporary_file(tmp_path: Path):
    spool = Spool(tmp_path)
    deep: object = 1
    for _ in range(300):
        deep = [deep]
    with pytest.raises(TypeError):
        spool.write([{**journal_row("a"), "delivery": {"envelope": deep}}])
    assert not _temporary_files(tmp_path) and not spool.files()


def test_a_failed_fsync_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A full disk fails at the fsync, after the temporary file exists (faked: we run as root on a big disk)."""
    spool = Spool(tmp_path)

    def full(_descriptor: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left on device"):
        spool.write([journal_row("a")])
    monkeypatch.undo()
    assert not _temporary_files(tmp_path) and not spool.files()


def test_the_drain_lock_is_never_opened_through_a_symlink(tmp_path: Path):
    target = tmp_path / "elsewhere"
    target.write_bytes(b"precious")
    spool = Spool(tmp_path / "spool")
    spool.directory.mkdir()
    (spool.directory / ".drain.lock").symlink_to(target)
    with pytest.raises(OSError, match="symbolic links") as caught, spool.exclusive():
        pass
    assert caught.value.errno == errno.ELOOP
    assert target.read_bytes() == b"precious"


def test_an_unusable_spool_directory_is_named(tmp_path: Path):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    assert Spool(tmp_path / "fine").problem() is None and (tmp_path / "fine").is_dir()
    assert not list((tmp_path / "fine").iterdir())  # the probe file is gone
    assert "NotADirectory" in (Spool(a_file).problem() or "") or "FileExists" in (Spool(a_file).problem() or "")
    assert Spool(a_file / "below").problem()  # cannot be created


def test_a_new_sqlite_database_is_0600(tmp_path: Path):
    previous = os.umask(0o022)
    try:
        url = f"sqlite:///{tmp_path / 'new.db'}"

        async def touch() -> None:
            engine = create_engine(url)
            try:
                async with engine.begin() as connection:
                    await connection.execute(sa.text("CREATE TABLE t (x INTEGER)"))
                    await connection.execute(sa.text("INSERT INTO t VALUES (1)"))
                for name in ("new.db", "new.db-wal", "new.db-shm"):
                    assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
            finally:
                await engine.dispose()

        asyncio.run(touch())
    finally:
        os.umask(previous)


def test_an_unusable_spool_is_reported_at_start_and_in_readyz_and_a_spool_failure_is_503(tmp_path: Path):
    a_file = tmp_path / "not-a-directory"
    a_file.write_text("")
    with InProcessService(f"sqlite:///{tmp_path / 'j.db'}", tmp_path, spool_dir=str(a_file)) as service:
        readiness = service.get("/readyz")
        assert readiness.status_code == 200, readiness.text  # the database takes writes: degraded, not down
        body = readiness.json()
        assert body["status"] == "degraded" and body["spool"]["writable"] is False
        assert any("MPS_SPOOL_DIR" in problem for problem in body["problems"])
    assert "MPS_SPOOL_DIR is not usable" in service.logs()

    missing = f"sqlite:///{tmp_path / 'missing' / 'j.db'}"
    with InProcessService(missing, tmp_path, migrate=False, spool_dir=str(a_file), journal_budget_seconds=0.3) as down:
        response = down.post({"NotificationType": "ProcessEof", "TaskId": "nowhere"})
        assert response.status_code == 503 and response.headers["retry-after"], response.text
    assert "spool write failed" in down.logs()
    assert not _temporary_files(tmp_path)
