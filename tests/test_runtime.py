"""serve's process model: what runs where, and under real faults (the background process
killed with -9, a database away at start).

No mocks: the service runs as a subprocess, the background process is found through /proc, the
database outage is a cut TCP proxy (MariaDB, PostgreSQL) or a directory that does not
exist yet (SQLite).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from mps_callback.app import create_app
from mps_callback.config import Settings
from mps_callback.journal.spool import Spool
from mps_callback.runtime import BACKGROUND_JOBS, RUNTIME_DIR_ENV, WEB_WORKER_JOBS, projector_status
from mps_callback.store.migrate import upgrade
from mps_callback.store.tables import notifications, tasks
from tests.support.background import background_process, jobs_started
from tests.support.bodies import journal_row
from tests.support.checks import wait_until
from tests.support.db import execute, query, scratch_database
from tests.support.projection import run_ingest
from tests.support.proxy import CuttableProxy
from tests.support.service import Service, start_service

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


def background_pids(service_pid: int) -> list[int]:
    return [
        pid for pid, argv in process_children(service_pid).items() if argv[-3:] == ["-m", "mps_callback", "background"]
    ]


def only_background(service_pid: int) -> int:
    wait_until(lambda: len(background_pids(service_pid)) == 1, 30, "one background child")
    return background_pids(service_pid)[0]


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


# ---------------------------------------------------------------- A. the background process is supervised


def test_background_killed_with_9_is_restarted_and_projects(tmp_path: Path) -> None:
    service = start_service(f"sqlite:///{tmp_path / 'j.db'}", tmp_path)
    try:
        first = only_background(service.process.pid)
        directory = runtime_dir_of(first)
        wait_until(lambda: state(directory) == "running", 15, "the first background process's heartbeat")
        assert service.get("/readyz").json()["projection"]["projector"]["projector"] == "running"

        os.kill(first, signal.SIGKILL)
        wait_until(lambda: state(directory) == "down", 5, "the status to say it is down")
        assert service.post(eof("after-kill-9")).status_code == 200

        wait_until(lambda: background_pids(service.process.pid) not in ([], [first]), 30, "a new background process")
        wait_until(lambda: state(directory) == "running", 15, "the new one's heartbeat")
        wait_until(lambda: projected(service.database_url, {"after-kill-9"}), 30, "the notification to be projected")
        assert not Path(f"/proc/{first}").exists(), "the killed process must be reaped, not left a zombie"
    finally:
        service.stop()
    lines = [orjson.loads(line) for line in service.logs().splitlines() if line.startswith("{")]
    deaths = [line for line in lines if line["message"] == "background process died; restarting"]
    assert len(deaths) == 1 and deaths[0]["pid"] == first and deaths[0]["signal"] == "SIGKILL"
    assert deaths[0]["restart_in_seconds"] == 1.0
    assert sum(line["message"] == "background process started" for line in lines) == 2


def test_sigterm_to_serve_leaves_no_background_process(tmp_path: Path) -> None:
    service = start_service(f"sqlite:///{tmp_path / 'j.db'}", tmp_path)
    try:
        child = only_background(service.process.pid)
        directory = runtime_dir_of(child)
    finally:
        exit_code = service.stop()
    assert exit_code == 0
    assert not Path(f"/proc/{child}").exists(), "serve must stop and reap its background process before it exits"
    assert not directory.exists()


def test_a_stop_signal_to_the_whole_group_is_not_reported_as_a_death(tmp_path: Path) -> None:
    """Ctrl-C and ``systemctl stop`` signal every process of serve's group; the background process may end first."""
    service = start_service(f"sqlite:///{tmp_path / 'j.db'}", tmp_path)
    try:
        child = only_background(service.process.pid)
        wait_until(lambda: state(runtime_dir_of(child)) == "running", 15, "the background process's heartbeat")
        os.kill(child, signal.SIGTERM)
        time.sleep(0.8)  # serve notices the exit (it looks every 0.5 s) before its own signal arrives
        os.kill(service.process.pid, signal.SIGTERM)
        assert service.process.wait(30) == 0
    finally:
        service.stop()
    assert "background process died" not in service.logs()
    assert background_pids(service.process.pid) == []


def test_status_is_external_when_serve_runs_no_background_process(tmp_path: Path) -> None:
    assert projector_status(tmp_path / "no-runtime-dir")["projector"] == "external"
    service = start_service(f"sqlite:///{tmp_path / 'j.db'}", tmp_path, serve_background="false", web_workers="2")
    try:
        web_workers = list(process_children(service.process.pid))
        assert web_workers and background_pids(service.process.pid) == []
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


def test_serve_starts_during_an_outage_and_catches_up(outage: Outage, tmp_path: Path) -> None:
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


def test_a_migration_failing_at_start_stops_serve_at_once(tmp_path: Path) -> None:
    conflicting_database(tmp_path / "journal.db")
    with pytest.raises(RuntimeError, match="service exited with 1"):
        start_service(f"sqlite:///{tmp_path / 'journal.db'}", tmp_path).stop()


def test_a_migration_failing_once_the_database_answers_stops_serve(tmp_path: Path) -> None:
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


# ---------------------------------------------------------------- C. what runs where


def test_web_workers_run_only_the_spool_drain_and_the_background_process_the_rest() -> None:
    """Each job in one table: a web worker must not repeat what the one background process does."""
    assert [job.name for job in WEB_WORKER_JOBS] == ["spool drain"]
    assert [job.name for job in BACKGROUND_JOBS] == [
        "heartbeat",
        "projection",
        "projection lag",
        "delivery backlog",
        "health samples",
        "retention purge",
        "forwarding",
        "queue doors",
        "reconciliation",
    ]


def old_and_new_notifications(url: str) -> None:
    """A migrated database with three unprojected notifications: t0 and t1 received 40 days ago, t2 now."""
    upgrade(url)
    run_ingest(url, [eof(f"t{number}") for number in range(3)], project=False)
    execute(url, f"UPDATE notifications SET received_at = '{days_ago(40)}' WHERE task_id IN ('t0', 't1')")


def days_ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).replace(tzinfo=None).isoformat(sep=" ")


def journal(url: str) -> list[str]:
    return sorted(row.task_id for row in query(url, sa.select(notifications.c.task_id)))


def test_a_web_worker_runs_no_purge_and_no_lag_query(tmp_path: Path) -> None:
    """The web worker's lifespan, retention on: it drains the spool, and neither purges nor measures the lag."""
    url = f"sqlite:///{tmp_path / 'j.db'}"
    old_and_new_notifications(url)
    Spool(tmp_path / "spool").write([journal_row("spooled")])
    statements: list[str] = []

    def record(_connection: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    async def one_web_worker() -> None:
        door = create_app(Settings(database_url=url, retention_days=1, spool_dir=str(tmp_path / "spool")))
        async with door.app.router.lifespan_context(door.app):
            await asyncio.sleep(1.5)  # every job has run at least once: each starts at once

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    try:
        asyncio.run(one_web_worker())
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)
    assert journal(url) == ["spooled", "t0", "t1", "t2"], "drained, and nothing purged"
    assert any(statement.startswith("INSERT") for statement in statements), "the worker's statements were seen"
    assert [s for s in statements if s.startswith("DELETE") or "projected_at IS NULL" in s] == []


def test_the_background_process_purges_only_when_retention_is_set(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'j.db'}"
    old_and_new_notifications(url)
    with background_process(url, tmp_path / "keep.log"):
        wait_until(lambda: projected(url, {"t0", "t1", "t2"}), 30, "the three to be projected")
    assert "retention purge" not in jobs_started(tmp_path / "keep.log")
    assert journal(url) == ["t0", "t1", "t2"]

    with background_process(url, tmp_path / "purge.log", retention_days="30"):
        wait_until(lambda: journal(url) == ["t2"], 30, "the old notifications to be purged")
    assert "retention purge" in jobs_started(tmp_path / "purge.log")
    assert [row.task_id for row in query(url, sa.select(tasks.c.task_id))] == ["t2"]


def web_worker_pids(service_pid: int) -> list[int]:
    """uvicorn's web workers (spawned processes) when it runs more than one."""
    return [pid for pid, argv in process_children(service_pid).items() if any("spawn_main" in a for a in argv)]


def test_serve_reads_the_old_setting_names_and_its_web_workers_never_purge(tmp_path: Path) -> None:
    """MPS_WORKERS and MPS_SERVE_PROJECTOR still work, with a warning; with retention on, two web
    workers purge nothing (that is the background process's job, and none runs here)."""
    url = f"sqlite:///{tmp_path / 'j.db'}"
    old_and_new_notifications(url)
    service = start_service(url, tmp_path, workers="2", serve_projector="false", retention_days="30")
    try:
        wait_until(lambda: len(web_worker_pids(service.process.pid)) == 2, 15, "two web workers")
        assert background_pids(service.process.pid) == []
        time.sleep(1.5)  # each web worker's jobs start with it
        assert journal(url) == ["t0", "t1", "t2"]
    finally:
        service.stop()
    logs = service.logs()
    assert "MPS_WORKERS is now MPS_WEB_WORKERS" in logs and "MPS_SERVE_PROJECTOR is now MPS_SERVE_BACKGROUND" in logs


def lag_metric(service: Service) -> float | None:
    found = re.search(r"^mps_projection_lag_seconds ([0-9.e+-]+)$", service.get("/metrics").text, re.MULTILINE)
    return float(found.group(1)) if found else None


def test_the_lag_gauge_comes_from_the_background_process_and_dies_with_it(tmp_path: Path) -> None:
    """/metrics shows the background process's latest lag; a killed one's figure does not stay.

    A notification waiting for a retry far ahead keeps the lag at an hour without being
    projected. /readyz is never asked here: it measures too.
    """
    url = f"sqlite:///{tmp_path / 'j.db'}"
    upgrade(url)
    run_ingest(url, [eof("waits")], project=False)
    execute(
        url,
        f"UPDATE notifications SET received_at = '{days_ago(1 / 24)}', projection_attempts = 1, "
        f"next_attempt_at = '{days_ago(-1)}'",
    )
    service = start_service(url, tmp_path)
    try:
        wait_until(lambda: (lag_metric(service) or 0) > 3000, 30, "the background process to measure an hour's lag")
        os.kill(only_background(service.process.pid), signal.SIGKILL)
        execute(url, "UPDATE notifications SET next_attempt_at = NULL")  # due now: the next process projects it
        wait_until(lambda: projected(url, {"waits"}), 30, "a new background process to project it")
        wait_until(lambda: lag_metric(service) == 0, 15, "the new process's lag of 0 to replace the dead one's hour")
    finally:
        service.stop()
