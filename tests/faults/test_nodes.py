"""Several nodes on one database, one of each killed mid-run: how a user outgrows one machine.

Two ``serve`` processes taking notifications (web workers only, ``MPS_SERVE_BACKGROUND=false``), two
standalone projectors (``mps-callback background``) and two forwarders (``mps-callback forward``) share one
MariaDB or PostgreSQL under load. One serve, one projector and one forwarder are killed with SIGKILL mid-run
and started again. Nothing home-made coordinates them: the journal's dedupe key, ``FOR UPDATE SKIP LOCKED``
and the forwarder's lease in the database do.

Counted afterwards: every notification answered 200 is stored once, every one stored is projected (one task
per TaskId), and every ``notification.received`` event owed reached the webhook receiver at least once,
signed.
"""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa

from mps_callback.store.tables import deliveries, notifications, tasks
from tests.support.background import start_command
from tests.support.checks import wait_until
from tests.support.db import migrated, query
from tests.support.forward import SECRET, Receiver, running_receiver
from tests.support.proxy import LoadResult, run_load
from tests.support.service import Service, free_port, start_service

pytestmark = [pytest.mark.faults, pytest.mark.process]

LOAD_SECONDS = 8.0


@pytest.fixture(params=["mysql", "postgres"])
def server_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from migrated(request.param, tmp_path)


@dataclass
class Nodes:
    """The processes of the run, by role; ``restart`` brings a killed one back as it was started."""

    url: str
    directory: Path
    config: Path
    serves: list[Service] = field(default_factory=list)
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def serve(self, name: str, port: int) -> Service:
        node = self.directory / name
        node.mkdir(exist_ok=True)
        return start_service(self.url, node, port, serve_background="false", forward_config=str(self.config))

    def start(self, name: str, command: str) -> None:
        settings = {"forward_config": str(self.config)} if command == "forward" else {}
        self.workers[name] = start_command(self.url, self.directory / f"{name}.log", command, **settings)

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def stop(self) -> None:
        for service in self.serves:
            service.stop()
        for process in self.workers.values():
            process.terminate()
        for process in self.workers.values():
            process.wait(30)


def forward_config(directory: Path, receiver: Receiver) -> Path:
    config = directory / "forward.toml"
    config.write_text(
        f'[[sink]]\nname = "app"\nurl = "{receiver.url()}"\nsecret = "{SECRET}"\nevents = ["notification.received"]\n'
        "retry_schedule = [1, 1, 2, 5, 10]\n"  # an attempt cut by a kill comes again within the test's wait
    )
    return config


def kills(nodes: Nodes, ports: list[int]) -> list[tuple[float, Callable[[], None]]]:
    """One serve, one projector and one forwarder killed a second apart, then all three started again."""

    def restart() -> None:
        nodes.serves[0] = nodes.serve("serve-a", ports[0])
        nodes.start("projector-1", "background")
        nodes.start("forwarder-1", "forward")

    return [
        (2.0, lambda: nodes.kill(nodes.serves[0].process)),
        (3.0, lambda: nodes.kill(nodes.workers["projector-1"])),
        (4.0, lambda: nodes.kill(nodes.workers["forwarder-1"])),
        (5.0, restart),
    ]


def test_two_of_each_with_one_of_each_killed_lose_nothing(server_database: str, tmp_path: Path) -> None:
    url = server_database
    with running_receiver() as receiver:
        nodes = Nodes(url, tmp_path, forward_config(tmp_path, receiver))
        ports = [free_port(), free_port()]
        try:
            nodes.serves = [nodes.serve("serve-a", ports[0]), nodes.serve("serve-b", ports[1])]
            for number in (1, 2):
                nodes.start(f"projector-{number}", "background")
                nodes.start(f"forwarder-{number}", "forward")
            loads = under_load(nodes, ports)
            wait_until(lambda: all(spool_empty(service) for service in nodes.serves), 60, "both spools to drain")
            wait_until(lambda: unprojected(url) == 0, 90, "every notification to be projected")
            try:
                wait_until(lambda: undelivered(url) == 0, 90, "every event to be delivered")
            except AssertionError as timeout:
                raise AssertionError(f"{timeout}: {delivery_states(url)}\n{forwarder_logs(tmp_path)}") from None
        finally:
            nodes.stop()
        received = Counter(event["id"] for event in receiver.verified)

    answered = {task_id: status for load in loads for task_id, status in load.answers.items()}
    accepted = {task_id for task_id, status in answered.items() if status == 200}
    stored = Counter(row.task_id for row in query(url, sa.select(notifications.c.task_id)))
    assert 0 in answered.values(), "the killed serve must have left some requests unanswered"
    assert accepted <= set(stored), f"answered 200, missing: {sorted(accepted - set(stored))[:5]}"
    assert max(stored.values()) == 1, "a notification stored twice"
    assert query(url, sa.select(sa.func.count()).select_from(tasks))[0][0] == len(stored)
    owed = {row.event_id for row in query(url, sa.select(deliveries.c.event_id))}
    assert len(owed) == len(stored) and owed <= set(received), "an event owed never reached the receiver"
    print(
        f"\nnodes: answered={Counter(answered.values())} stored={len(stored)} events={len(owed)} "
        f"received={sum(received.values())} (repeats {sum(received.values()) - len(received)})"
    )


def under_load(nodes: Nodes, ports: list[int]) -> list[LoadResult]:
    """Both serves loaded at once for ``LOAD_SECONDS``, the kills fired from the first one's load."""
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(run_load, f"http://127.0.0.1:{ports[0]}", LOAD_SECONDS, "node-a", 4, kills(nodes, ports))
        second = pool.submit(run_load, f"http://127.0.0.1:{ports[1]}", LOAD_SECONDS, "node-b", 4)
        return [first.result(), second.result()]


def spool_empty(service: Service) -> bool:
    return bool(service.get("/readyz").json().get("spool_depth", 1) == 0)


def unprojected(url: str) -> int:
    statement = sa.select(sa.func.count()).select_from(notifications).where(notifications.c.projected_at.is_(None))
    return int(query(url, statement)[0][0])


def delivery_states(url: str) -> list[tuple[str, int, int]]:
    """(status, attempts, how many) of the deliveries: what a forwarding that never finished left."""
    statement = sa.select(deliveries.c.status, deliveries.c.attempts, sa.func.count()).group_by(
        deliveries.c.status, deliveries.c.attempts
    )
    return [tuple(row) for row in query(url, statement)]


def forwarder_logs(directory: Path) -> str:
    return "\n".join(path.read_text(errors="replace")[-2000:] for path in sorted(directory.glob("forwarder-*.log")))


def undelivered(url: str) -> int:
    statement = sa.select(sa.func.count()).select_from(deliveries).where(deliveries.c.status != "delivered")
    return int(query(url, statement)[0][0])
