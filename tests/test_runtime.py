"""serve's process model under real faults: a projector killed with -9, serve stopped with SIGTERM.

No mocks: the service runs as a subprocess and the projector is found through /proc.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import orjson
import sqlalchemy as sa

from mps_callback.runtime import RUNTIME_DIR_ENV, projector_status
from mps_callback.store.tables import tasks
from tests.conftest import query, start_service
from tests.faults.harness import wait_until


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
    projector = only_projector(service.process.pid)
    directory = runtime_dir_of(projector)
    assert service.stop() == 0
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
