"""The forwarder against real databases and real receivers: delivered, retried, dead, disabled, at least once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aio_pika
import orjson
import pytest
import sqlalchemy as sa
from standardwebhooks import Webhook

from mps_callback.config import Settings
from mps_callback.forward.config import SinkConfig, parse
from mps_callback.forward.forwarder import Forwarder, outbox_of
from mps_callback.intake.accept import Delivery, Intake
from mps_callback.journal.group_commit import GroupCommitJournal
from mps_callback.journal.spool import Spool
from mps_callback.project.projector import Projector
from mps_callback.runtime import BACKGROUND_JOBS, BackgroundProcess
from mps_callback.store.engine import create_engine
from mps_callback.store.tables import deliveries, delivery_attempts
from tests.support.bodies import FIXTURES, load_fixture
from tests.support.checks import wait_until
from tests.support.cli import cli, one_line_error
from tests.support.db import query, run
from tests.support.forward import SECRET, Receiver, need
from tests.support.service import start_service

SUBTITLES = "vod/WorkflowTask-SmartSubtitles-AsrFullTextTask.json"


def sinks(*tables: dict[str, Any]) -> tuple[SinkConfig, ...]:
    return parse({"sink": list(tables)})


def webhook(url: str, name: str = "app", **options: Any) -> dict[str, Any]:
    return {"name": name, "url": url, "secret": SECRET, **options}


def eof(task_id: str) -> dict[str, Any]:
    return {"NotificationType": "ProcessEof", "TaskId": task_id, "ProcessEofInfo": {"ErrCode": 0}}


def owe(url: str, configured: tuple[SinkConfig, ...], bodies: list[dict[str, Any]], project: bool = True) -> None:
    """Journal ``bodies`` (and project them) with ``configured`` sinks: the outbox rows they cause."""

    async def go() -> None:
        engine = create_engine(url)
        journal = GroupCommitJournal(engine, Spool(tempfile.mkdtemp()), outbox=outbox_of(configured))
        journal.start()
        try:
            intake = Intake(Settings(notify_keys=""), journal)
            for body in bodies:
                await intake.accept(orjson.dumps(body), Delivery("test"))
            await journal.close()
            if project:
                await Projector(engine, outbox=outbox_of(configured)).drain()
        finally:
            await engine.dispose()

    run(go())


def forward(url: str, configured: tuple[SinkConfig, ...], passes: int | None = None, **options: Any) -> int:
    """Run a forwarder: ``passes`` claims, or until nothing is due; how many deliveries it took."""

    async def go() -> int:
        engine = create_engine(url)
        forwarder = Forwarder(engine, configured, **options)
        try:
            if passes is None:
                return await forwarder.drain()
            return sum([await forwarder.run_once() for _ in range(passes)])
        finally:
            await forwarder.close()
            await engine.dispose()

    return run(go())


def states(url: str) -> list[tuple[str, str, int]]:
    return [
        tuple(row)
        for row in query(
            url, sa.select(deliveries.c.event, deliveries.c.status, deliveries.c.attempts).order_by(deliveries.c.id)
        )
    ]


def attempts(url: str) -> list[tuple[str, int | None, str | None]]:
    return [
        tuple(row)
        for row in query(
            url,
            sa.select(delivery_attempts.c.outcome, delivery_attempts.c.status_code, delivery_attempts.c.error).order_by(
                delivery_attempts.c.id
            ),
        )
    ]


def test_each_event_is_delivered_signed_once_and_recorded(database_url: str, receiver: Receiver):
    body = load_fixture(SUBTITLES)
    task_id = body["WorkflowTaskEvent"]["TaskId"]
    configured = sinks(webhook(receiver.url()))
    owe(database_url, configured, [body])

    assert forward(database_url, configured) == 3
    assert [request.verified for request in receiver.requests] == [True] * 3
    envelopes = {envelope["type"]: envelope for envelope in receiver.verified}  # sent concurrently: any order
    assert sorted(envelopes) == ["notification.received", "task.finished", "task.updated"]
    assert sorted(request.headers["webhook-id"] for request in receiver.requests) == sorted(
        envelope["id"] for envelope in envelopes.values()
    )
    assert envelopes["task.updated"]["data"] == envelopes["task.finished"]["data"]  # one change, one state
    assert (envelopes["task.updated"]["sequence"], envelopes["task.finished"]["sequence"]) == (1, 2)
    received, finished = envelopes["notification.received"]["data"], envelopes["task.finished"]["data"]
    assert received["body"]["WorkflowTaskEvent"]["TaskId"] == task_id and received["channel"] == "test"
    assert finished["task_id"] == task_id and finished["status"] == "FINISH"
    assert any(output["url"] and output["url"].endswith(".vtt") for output in finished["outputs"])
    assert states(database_url) == [
        (event, "delivered", 1) for event in ("notification.received", "task.updated", "task.finished")
    ]
    assert attempts(database_url) == [("delivered", None, None)] * 3
    assert forward(database_url, configured) == 0  # nothing sent twice


def test_a_receiver_away_then_back_is_retried_and_delivered_once(database_url: str, receiver: Receiver, proxy_to: Any):
    proxy = proxy_to(receiver.port)
    configured = sinks(
        webhook(receiver.url(port=proxy.port), events=["notification.received"], retry_schedule=[0, 0.2, 5])
    )
    owe(database_url, configured, [eof("away-task")], project=False)

    proxy.down()
    assert forward(database_url, configured, passes=1) == 1
    assert states(database_url) == [("notification.received", "pending", 1)]
    [(outcome, code, error)] = attempts(database_url)
    assert outcome == "retry" and code is None and error
    assert forward(database_url, configured, passes=1) == 0  # not due before its 0.2 s

    proxy.up()
    time.sleep(0.3)
    assert forward(database_url, configured) == 1
    assert states(database_url) == [("notification.received", "delivered", 2)]
    assert len(receiver.verified) == 1 and receiver.verified[0]["data"]["task_id"] == "away-task"


def test_retry_after_is_honoured_when_longer_than_the_schedule(database_url: str, receiver: Receiver):
    receiver.answers.append((503, {"retry-after": "120"}))
    configured = sinks(webhook(receiver.url(), events=["notification.received"], retry_schedule=[0, 1]))
    owe(database_url, configured, [eof("busy-task")], project=False)

    assert forward(database_url, configured) == 1
    [(next_attempt_at, last_error)] = query(
        database_url, sa.select(deliveries.c.next_attempt_at, deliveries.c.last_error)
    )
    assert next_attempt_at > datetime.now(UTC) + timedelta(seconds=100)
    assert last_error.startswith("HTTP 503")
    assert attempts(database_url) == [("retry", 503, last_error)]


def test_a_delivery_is_dead_after_its_last_scheduled_attempt(database_url: str, receiver: Receiver):
    receiver.answers.extend([(500, {})] * 3)
    configured = sinks(webhook(receiver.url(), events=["notification.received"], retry_schedule=[0, 0.1]))
    owe(database_url, configured, [eof("doomed-task")], project=False)

    assert forward(database_url, configured) == 1
    time.sleep(0.15)
    assert forward(database_url, configured) == 1
    time.sleep(0.15)
    assert forward(database_url, configured) == 0
    assert states(database_url) == [("notification.received", "dead", 2)]
    assert [(outcome, code) for outcome, code, _ in attempts(database_url)] == [("retry", 500), ("retry", 500)]
    assert len(receiver.requests) == 2


def test_a_410_disables_the_sink_and_leaves_its_deliveries_pending(
    database_url: str, receiver: Receiver, caplog: pytest.LogCaptureFixture
):
    receiver.answers.append((410, {}))
    configured = sinks(webhook(receiver.url(), events=["notification.received"]))
    owe(database_url, configured, [eof("gone-1"), eof("gone-2")], project=False)

    assert forward(database_url, configured, passes=3, batch_size=1) == 1  # the 410, then nothing for that sink
    assert states(database_url) == [("notification.received", "pending", 0)] * 2
    assert [record.message for record in caplog.records if record.levelname == "ERROR"] == [
        "sink disabled until restart; its deliveries stay pending"
    ]
    assert forward(database_url, configured) == 2  # a restart (a new forwarder) sends them


def test_two_forwarders_deliver_each_event_once(database_url: str, receiver: Receiver):
    configured = sinks(webhook(receiver.url(), events=["notification.received"]))
    owe(database_url, configured, [eof(f"pair-{number}") for number in range(40)], project=False)

    async def both() -> list[int]:
        engines = [create_engine(database_url) for _ in range(2)]
        forwarders = [Forwarder(engine, configured, batch_size=3) for engine in engines]
        try:
            return list(await asyncio.gather(*(forwarder.drain() for forwarder in forwarders)))
        finally:
            for forwarder, engine in zip(forwarders, engines, strict=True):
                await forwarder.close()
                await engine.dispose()

    taken = run(both())
    assert sum(taken) == 40
    ids = [request.headers["webhook-id"] for request in receiver.requests]
    assert len(ids) == 40 and len(set(ids)) == 40
    assert states(database_url) == [("notification.received", "delivered", 1)] * 40


# ---------------------------------------------------------------- a real forwarder process, killed mid-delivery


class SlowReceiver:
    """A webhook receiver that holds its first request ``hold_seconds`` before answering; (id, verified) of each."""

    def __init__(self, hold_seconds: float) -> None:
        self.seen: list[tuple[str, bool]] = []
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {name.lower(): value for name, value in self.headers.items()}
                try:
                    Webhook(SECRET).verify(body, headers)
                    verified = True
                except Exception:
                    verified = False
                seen.append((headers.get("webhook-id", ""), verified))
                if len(seen) == 1:
                    time.sleep(hold_seconds)
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def slow_receiver(hold_seconds: float) -> Iterator[SlowReceiver]:
    receiver = SlowReceiver(hold_seconds)
    try:
        yield receiver
    finally:
        receiver.close()


def write_config(directory: Path, *tables: str) -> Path:
    path = directory / "forward.toml"
    path.write_text("\n".join(tables))
    return path


def webhook_table(port: int, **options: str) -> str:
    extra = "".join(f"{key} = {value}\n" for key, value in options.items())
    return f'[[sink]]\nname = "app"\nurl = "http://127.0.0.1:{port}/hooks"\nsecret = "{SECRET}"\n{extra}'


def forwarder_process(url: str, config: Path, log: Path, lease: float) -> subprocess.Popen[bytes]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MPS_")}
    env |= {"MPS_DATABASE_URL": url, "MPS_FORWARD_CONFIG": str(config)}
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "mps_callback", "forward", "--lease", str(lease)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


@pytest.mark.process
def test_a_forwarder_killed_mid_delivery_delivers_after_restart(database_url: str, tmp_path: Path):
    with slow_receiver(hold_seconds=30) as receiver:
        url = f"http://127.0.0.1:{receiver.port}/hooks"
        config = write_config(tmp_path, webhook_table(receiver.port, events='["notification.received"]'))
        owe(database_url, sinks(webhook(url, events=["notification.received"])), [eof("killed")], project=False)
        log = tmp_path / "forward.log"

        first = forwarder_process(database_url, config, log, lease=2)
        try:
            wait_until(lambda: len(receiver.seen) >= 1, 30, "the first delivery to reach the receiver")
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        assert states(database_url) == [("notification.received", "pending", 0)]  # claimed, never recorded

        second = forwarder_process(database_url, config, log, lease=2)
        try:
            wait_until(lambda: states(database_url)[0][1] == "delivered", 30, "the delivery after the restart")
        finally:
            second.terminate()
            assert second.wait(10) == 0, log.read_text()
        [(event_id,)] = query(database_url, sa.select(deliveries.c.event_id))
        assert receiver.seen == [(event_id, True), (event_id, True)]  # at least once: the cut one, then again


# ---------------------------------------------------------------- RabbitMQ, and the whole way from `send`


RABBITMQ = "amqp://guest:guest@127.0.0.1:5672/"


class Queue:
    """A RabbitMQ queue bound to a fresh exchange, each step on its own connection (tests run several event loops)."""

    def __init__(self) -> None:
        name = f"mps.test.{uuid.uuid4().hex[:8]}"
        self.exchange, self.queue = name, name + ".q"
        self.sink_url = f"{RABBITMQ}?exchange={self.exchange}"

    async def bind(self) -> None:
        connection = await aio_pika.connect(RABBITMQ)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(self.exchange, aio_pika.ExchangeType.TOPIC, durable=True)
            queue = await channel.declare_queue(self.queue, auto_delete=False)
            await queue.bind(exchange, "#")

    async def take(self, count: int, seconds: float = 30) -> list[tuple[str | None, dict[str, Any]]]:
        """Up to ``count`` messages (waiting ``seconds`` at most, then a moment for extras); the queue goes after."""
        taken: list[tuple[str | None, dict[str, Any]]] = []
        connection = await aio_pika.connect(RABBITMQ)
        async with connection:
            channel = await connection.channel()
            queue = await channel.get_queue(self.queue)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                message = await queue.get(no_ack=True, fail=False)
                if message is not None:
                    taken.append((message.message_id, orjson.loads(message.body)))
                elif len(taken) >= count:
                    break
                else:
                    await asyncio.sleep(0.1)
            await channel.queue_delete(self.queue)
            await channel.exchange_delete(self.exchange)
        return taken


def test_rabbitmq_gets_task_finished_with_the_event_id(database_url: str):
    need("amqp")
    queue = Queue()
    run(queue.bind())
    configured = sinks({"name": "queue", "url": queue.sink_url, "events": ["task.finished"]})
    owe(database_url, configured, [load_fixture(SUBTITLES)])
    assert forward(database_url, configured) == 1
    [(message_id, envelope)] = run(queue.take(1))
    [(event_id,)] = query(database_url, sa.select(deliveries.c.event_id))
    assert message_id == event_id == envelope["id"] and envelope["type"] == "task.finished"


@pytest.mark.process
def test_serve_stops_at_start_on_a_bad_forward_configuration(tmp_path: Path):
    config = write_config(tmp_path, '[[sink]]\nname = "app"\nurl = "http://127.0.0.1:9/hooks"\n')
    line = one_line_error(
        cli("serve", env={"MPS_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "MPS_FORWARD_CONFIG": str(config)}),
        2,
    )
    assert "sink 'app'" in line and "secret" in line


@pytest.mark.process
def test_send_to_serve_makes_a_verified_task_finished_arrive_at_a_webhook_and_rabbitmq(
    database_url: str, receiver: Receiver, tmp_path: Path
):
    """Done when (issue 11): a smart-subtitle WorkflowTask sent with `mps-callback send` reaches both sinks."""
    need("amqp")
    queue = Queue()
    run(queue.bind())
    config = write_config(
        tmp_path,
        webhook_table(receiver.port, events='["task.finished"]').replace("/hooks", "/hooks/mps"),
        f'[[sink]]\nname = "queue"\nurl = "{queue.sink_url}"\nevents = ["task.finished"]\n',
    )
    service = start_service(database_url, tmp_path, forward_config=str(config), notify_keys="e2e-key")
    try:
        fixture = FIXTURES / SUBTITLES
        sent = cli("send", str(fixture), "--url", service.base_url + "/v1/mps/callback", "--key", "e2e-key")
        assert sent.returncode == 0, sent.stderr
        wait_until(lambda: len(receiver.verified) >= 1, 60, "task.finished at the webhook receiver")
        [(message_id, queued)] = run(queue.take(1))
    finally:
        service.stop()
    [hooked] = receiver.verified
    task_id = load_fixture(SUBTITLES)["WorkflowTaskEvent"]["TaskId"]
    for envelope in (hooked, queued):
        assert envelope["type"] == "task.finished" and envelope["data"]["task_id"] == task_id
        urls = [output["url"] for output in envelope["data"]["outputs"] if (output["url"] or "").endswith(".vtt")]
        assert urls and all(url.startswith("https://mps-out-1250000000.cos.ap-guangzhou.myqcloud.com/") for url in urls)
    assert hooked["id"] == queued["id"] == message_id  # one event, one id, whichever sink carries it


def test_forward_without_sinks_says_there_is_nothing_to_forward(tmp_path: Path):
    line = one_line_error(cli("forward", env={"MPS_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}), 2)
    assert "nothing to forward" in line


def test_the_background_process_forwards_only_when_sinks_are_configured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    background = BackgroundProcess(create_engine(f"sqlite:///{tmp_path / 'x.db'}"), Settings(), None)
    monkeypatch.delenv("MPS_FORWARD_CONFIG", raising=False)
    assert "forwarding" not in [job.name for job in BACKGROUND_JOBS if job.wanted(background)]
    monkeypatch.setenv("MPS_FORWARD_CONFIG", str(write_config(tmp_path, webhook_table(9))))
    assert "forwarding" in [job.name for job in BACKGROUND_JOBS if job.wanted(background)]
