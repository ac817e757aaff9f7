"""serve's process model under real faults: a projector killed with -9, a database away at start.

No mocks: the service runs as a subprocess, the projector is found through /proc, the
database outage is a cut TCP proxy (MariaDB, PostgreSQL) or a directory that does not
exist yet (SQLite).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from mps_callback.runtime import RUNTIME_DIR_ENV, projector_status
from mps_callback.store.tables import notifications, tasks
from tests.support.checks import wait_until
from tests.support.db import query, scratch_database
from tests.support.proxy import CuttableProxy
from tests.support.service import start_service

pytestmark = pytest.mark.process  # every test here starts a real process


def process_children(parent: int) -> dict[int, list[str]]:
    """pid -> argv of every live (not zombie) process whose parent is ``parent``, read from /proc."""
    found: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # it ended while we looked
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == parent and state != "Z":
            found[int(entry.name)] = [part.decode() for part in argv if part]
    return found


def projector_pids(service_pid: int) -> list[int]:
    return [pid for pid, argv in process_children(service_pid).items() if argv[-3:] == ["-m", "mps_callback", "worker"]]


def only_projector(service_pid: int) -> int:
    wait_until(lambda: len(projector_pids(service_pid)) == 1, 30, "one projector child")
    return projector_pids(service_pid)[0]


def runtime_dir_of(pid: int) -> Path:
    """The runtime directory serve handed down to its child ``pid``."""
    items = (Path(f"/proc/{pid}") / "environ").read_bytes().split(b"\0")
    environ = dict(item.decode().split("=", 1) for item in items if b"=" in item)
    return Path(environ[RUNTIME_DIR_ENV])


def state(directory: Path) -> object:
    return projector_status(directory)["projector"]


def eof(task_id: str) -> dict[str, object]:
    return {"NotificationType": "ProcessEof", "TaskId": task_id, "ProcessEofInfo": {"ErrCode": 0}}


def projected(url: str, task_ids: set[str]) -> bool:
    """Are all ``task_ids`` in the tasks table (False while the table does not exist yet)?"""
    try:
        return {row.task_id for row in query(url, sa.select(tasks.c.task_id))} >= task_ids
    except sa.exc.DBAPIError:
        return False


# ---------------------------------------------------------------- A. the projector is supervised


def test_projector_killed_with_9_is_restarted_and_projects(tmp_path: Path):
    service = start_service(f"sqlite:///{tmp_path / 'j.db'}", tmp_path)
    try:
        first = only_projector(service.process.pid)
        directory = runtime_dir_of(first)
        wait_until(lambda: state(directory) == "running", 15, "the first projector's heartbeat")
        assert service.get("/readyz").json()["projection"]["projector"]["projector"] == "running"

        os.kill(first, signal.SIGKILL)
        wait_until(lambda: state(directory) == "down", 5, "the status to say the projector is down")
        assert service.post(eof("after-kill-9")).status_code == 200

        wait_until(lambda: projector_pids(service.process.pid) not in ([], [first]), 30, "a new projector")
        wait_until(lambda: state(directory) == "running", 15, "the new projector's heartbeat")
        wait_until(lambda: projected(service.database_url, {"after-kill-9"}), 30, "the notification to be projected")
        assert not Path(f"/proc/{first}").exists(), "the killed projector must be reaped, not left a zombie"
    finally:
        service.stop()
    lines = [orjson.loads(line) for line in service.logs().splitlines() if line.startswith("{")]
    deaths = [line for line in lines if line["message"] == "projector died; restarting"]
    assert len(deaths) == 1 and deaths[0]["pid"] == first and deaths[0]["signal"] == "SIGKILL"
    assert deaths[0]["restart_in_seconds"] == 1.0
    assert sum(line["message"] == "projector started" for line in lines) == 2


def test_sigterm_to_serve_leaves_no_projector(tmp_path: Path):
    service = start_service(f"sqlite:///{tmp_path / 'j.db'}", tmp_path)
    try:
        projector = only_projector(service.process.pid)
        directory = runtime_dir_of(projector)
    finally:
        exit_code = service.stop()
    assert exit_code == 0
    assert not Path(f"/proc/{projector}").exists(), "serve must stop and reap its projector before it exits"
    assert not directory.exists()


def test_status_is_external_when_serve_runs_no_projector(tmp_path: Path):
    assert projector_status(tmp_path / "no-runtime-dir")["projector"] == "external"
    service = start_service(f"sqlite:///{tmp_path / 'j.db'}", tmp_path, serve_projector="false", workers="2")
    try:
        web_workers = list(process_children(service.process.pid))
        assert web_workers and projector_pids(service.process.pid) == []
        directory = runtime_dir_of(web_workers[0])  # what a web worker's /readyz would read
        assert projector_status(directory) == {"projector": "external", "heartbeat_age_seconds": None}
    finally:
        service.stop()


# ---------------------------------------------------------------- B. serve starts during an outage


@dataclass
class Outage:
    """A database serve cannot reach until ``end()``; ``url`` is what serve is told, ``real`` the database."""

    url: str
    real: str
    end: Callable[[], None]


def through(proxy: CuttableProxy, url: str) -> str:
    return make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "mysql", "postgres"])
def outage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Outage]:
    """An empty, unmigrated database behind an outage that is on when the test starts."""
    if request.param == "sqlite":  # unreachable: its directory does not exist yet
        later = tmp_path / "mounted-later"
        url = f"sqlite:///{later / 'journal.db'}"
        yield Outage(url, url, later.mkdir)
        return
    for url in scratch_database(request.param):
        real = make_url(url)
        proxy = CuttableProxy(real.host or "127.0.0.1", real.port or 0)
        proxy.cut()
        try:
            yield Outage(through(proxy, url), url, proxy.restore)
        finally:
            proxy.close()


def test_serve_starts_during_an_outage_and_catches_up(outage: Outage, tmp_path: Path):
    service = start_service(outage.url, tmp_path)
    try:
        sent = {f"outage-{number}" for number in range(5)}
        for task_id in sorted(sent):
            answer = service.post(eof(task_id))
            assert answer.status_code == 200 and answer.json()["spooled"] is True, answer.text
        time.sleep(2)  # serve retries the migrations meanwhile
        outage.end()
        wait_until(lambda: projected(outage.real, sent), 60, "the spooled notifications to be journaled and projected")
        wait_until(lambda: service.get("/readyz").json().get("spool_depth") == 0, 10, "an empty spool")
    finally:
        service.stop()
    stored = Counter(row.task_id for row in query(outage.real, sa.select(notifications.c.task_id)))
    assert stored == Counter(sent), "every notification journaled exactly once"
    assert not list((tmp_path / "spool" / "quarantine").glob("*")), "nothing set aside"
    logs = service.logs()
    assert "database unreachable; serving anyway" in logs and "database migrated" in logs


def conflicting_database(path: Path) -> None:
    """A database that answers but holds a table the first migration would create."""
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE notifications (something_else INTEGER)")


def test_a_migration_failing_at_start_stops_serve_at_once(tmp_path: Path):
    conflicting_database(tmp_path / "journal.db")
    with pytest.raises(RuntimeError, match="service exited with 1"):
        start_service(f"sqlite:///{tmp_path / 'journal.db'}", tmp_path).stop()


def test_a_migration_failing_once_the_database_answers_stops_serve(tmp_path: Path):
    """The database comes back, but the migrations cannot apply: a real error, serve exits 1."""
    later = tmp_path / "mounted-later"
    service = start_service(f"sqlite:///{later / 'journal.db'}", tmp_path)
    staged = tmp_path / "staged"
    staged.mkdir()
    conflicting_database(staged / "journal.db")
    staged.rename(later)  # appears at once, table and all
    try:
        assert service.process.wait(60) == 1
    except subprocess.TimeoutExpired:
        service.stop()
        raise
    assert "migrations failed against a database that answers" in service.logs()
