"""The forwarder against real databases and real receivers: delivered, retried, dead, disabled, at least once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
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
from mps_callback.runtime import BACKGROUND_JOBS, BackgroundProcess
from mps_callback.store.engine import create_engine
from mps_callback.store.tables import deliveries, delivery_attempts
from tests.support.bodies import FIXTURES, load_fixture
from tests.support.checks import wait_until
from tests.support.cli import cli, one_line_error
from tests.support.consumers import S3Harness
from tests.support.db import query, run
from tests.support.forward import SECRET, Receiver, need
from tests.support.projection import ingest_and_project
from tests.support.service import InProcessService, start_service

SUBTITLES = "vod/WorkflowTask-SmartSubtitles-AsrFullTextTask.json"
TOKEN = "api-token-for-the-forwarder"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def sinks(*tables: dict[str, Any]) -> tuple[SinkConfig, ...]:
    return parse({"sink": list(tables)})


def webhook(url: str, name: str = "app", **options: Any) -> dict[str, Any]:
    return {"name": name, "url": url, "secret": SECRET, **options}


def eof(task_id: str) -> dict[str, Any]:
    return {"NotificationType": "ProcessEof", "TaskId": task_id, "ProcessEofInfo": {"ErrCode": 0}}


def owe(url: str, configured: tuple[SinkConfig, ...], bodies: list[dict[str, Any]], project: bool = True) -> None:
    """Journal ``bodies`` (and project them) with ``configured`` sinks: the outbox rows they cause."""
    run(ingest_and_project(url, bodies, project, outbox=outbox_of(configured)))


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


def test_a_dead_delivery_retried_from_the_api_is_delivered(database_url: str, receiver: Receiver, tmp_path: Path):
    receiver.answers.append((500, {}))  # one attempt in the schedule, refused: dead
    configured = sinks(webhook(receiver.url(), events=["notification.received"], retry_schedule=[0]))
    owe(database_url, configured, [eof("revived")], project=False)
    assert forward(database_url, configured) == 1
    assert states(database_url) == [("notification.received", "dead", 1)]
    assert forward(database_url, configured) == 0  # dead stays dead: nothing is due

    with InProcessService(database_url, tmp_path, api_token=TOKEN) as service:
        listed = service.get("/v1/deliveries", params={"status": "dead", "task": "revived"}, headers=AUTH).json()
        [delivery_id] = [item["id"] for item in listed["items"]]
        retried = service.post(b"", path=f"/v1/deliveries/{delivery_id}/retry", headers=AUTH)
        assert retried.status_code == 200, retried.text
        assert retried.json()["status"] == "pending"

        assert forward(database_url, configured) == 1  # the receiver answers now (204)
        detail = service.get(f"/v1/deliveries/{delivery_id}", headers=AUTH).json()
    assert (detail["status"], detail["attempts"], detail["delivered_at"] is not None) == ("delivered", 2, True)
    assert [(a["outcome"], a["status_code"]) for a in detail["attempts_made"]] == [("retry", 500), ("delivered", None)]
    assert [request.verified for request in receiver.requests] == [True, True]
    assert (
        receiver.requests[0].headers["webhook-id"] == receiver.requests[1].headers["webhook-id"] == detail["event_id"]
    )
    assert receiver.verified[1]["data"]["task_id"] == "revived"


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


#: Events owed when the broker goes away.
OWED = 50


@contextmanager
def forwarding(url: str, configured: tuple[SinkConfig, ...], **options: Any) -> Iterator[None]:
    """A forwarder running as `serve` runs it (``run_forever``), in a thread of its own, until the block ends."""
    stop = threading.Event()

    async def go() -> None:
        engine = create_engine(url)
        forwarder = Forwarder(engine, configured, **options)
        running = asyncio.create_task(forwarder.run_forever(idle_seconds=0.02))
        try:
            await asyncio.to_thread(stop.wait)
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
            await forwarder.close()
            await engine.dispose()

    thread = threading.Thread(target=lambda: asyncio.run(go()), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


def delivered_and_retried(url: str) -> tuple[int, int]:
    """How many deliveries are delivered, and how many attempts failed and will be tried again."""
    [(delivered, retried)] = query(
        url,
        sa.select(
            sa.select(sa.func.count()).where(deliveries.c.status == "delivered").scalar_subquery(),
            sa.select(sa.func.count()).where(delivery_attempts.c.outcome == "retry").scalar_subquery(),
        ),
    )
    return int(delivered), int(retried)


def test_rabbitmq_cut_while_events_are_owed_loses_none(database_url: str, proxy_to: Any):
    """The forwarder's loop with its records through a broker outage: the connection cut mid-run
    and refused for a while, then back; every event reaches the queue, none dead, none lost."""
    need("amqp")
    queue = Queue()
    run(queue.bind())
    proxy = proxy_to(5672)
    url = queue.sink_url.replace("127.0.0.1:5672", f"127.0.0.1:{proxy.port}")
    configured = sinks(
        {"name": "queue", "url": url, "events": ["notification.received"], "retry_schedule": [0] + [0.2] * 49}
    )
    owe(database_url, configured, [eof(f"cut-{number}") for number in range(OWED)], project=False)

    with forwarding(database_url, configured, batch_size=5):
        wait_until(lambda: delivered_and_retried(database_url)[0] >= 10, 60, "some deliveries before the cut")
        proxy.down()  # cuts the connection under the batches in flight, and refuses new ones
        owed_at_the_cut = OWED - delivered_and_retried(database_url)[0]
        wait_until(  # away for a while: each owed event tried about three times and refused
            lambda: delivered_and_retried(database_url)[1] >= 3 * owed_at_the_cut,
            60,
            "attempts failing while the broker is away",
        )
        proxy.up()
        wait_until(
            lambda: delivered_and_retried(database_url)[0] == OWED, 60, "every delivery after the broker is back"
        )

    assert owed_at_the_cut > 0, "the broker came back with events still owed"
    event_ids = {event_id for (event_id,) in query(database_url, sa.select(deliveries.c.event_id))}
    taken = run(queue.take(OWED))
    assert {message_id for message_id, _ in taken} == event_ids and len(event_ids) == OWED  # each at least once
    assert all(envelope["id"] == message_id for message_id, envelope in taken)
    assert {status for _, status, _ in states(database_url)} == {"delivered"}
    assert proxy.accepted >= 2, "the sink reconnected after the cut"


@pytest.mark.process
def test_serve_stops_at_start_on_a_bad_forward_configuration(tmp_path: Path):
    config = write_config(tmp_path, '[[sink]]\nname = "app"\nurl = "http://127.0.0.1:9/hooks"\n')
    line = one_line_error(
        cli("serve", env={"MPS_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "MPS_FORWARD_CONFIG": str(config)}),
        2,
    )
    assert "sink 'app'" in line and "secret" in line


#: Where the smart-subtitle fixture's outputs are: its COS output bucket.
OUTPUT_BASE = "https://mps-out-1250000000.cos.ap-guangzhou.myqcloud.com/mps/smartsubtitlestaskresult/asrfulltexttask/"


#: The subtitle files it names: Path (also SubtitleInfo.Path), SubtitlePath, SubtitleInfo.SubtitleEmbedPath.
SUBTITLE_FILES = ("path-0.vtt", "subtitlepath-0.vtt", "subtitleembedpath-0.vtt")


def subtitle_urls(envelope: dict[str, Any]) -> set[str]:
    return {output["url"] for output in envelope["data"]["outputs"] if (output["url"] or "").endswith(".vtt")}


@pytest.mark.process
def test_send_to_serve_makes_a_verified_task_finished_arrive_at_every_kind_of_sink(
    database_url: str, receiver: Receiver, moto_port: int, tmp_path: Path
):
    """Done when (issue 11): one smart-subtitle WorkflowTask sent with `mps-callback send` reaches a
    webhook (verified, with the subtitle URLs), a RabbitMQ queue, the S3 stand-in and an Apprise endpoint."""
    need("amqp")
    queue, bucket = Queue(), S3Harness(moto_port)
    run(queue.bind())
    run(bucket.start())
    only_finished = 'events = ["task.finished"]\n'
    config = write_config(
        tmp_path,
        webhook_table(receiver.port, events='["task.finished"]').replace("/hooks", "/hooks/mps"),
        f'[[sink]]\nname = "queue"\nurl = "{queue.sink_url}"\n{only_finished}',
        f'[[sink]]\nname = "archive"\nurl = "{bucket.url(moto_port)}"\n{only_finished}',
        f'[[sink]]\nname = "people"\nurl = "apprise+json://127.0.0.1:{receiver.port}/apprise"\n{only_finished}',
    )
    service = start_service(database_url, tmp_path, forward_config=str(config), notify_keys="e2e-key")
    try:
        fixture = FIXTURES / SUBTITLES
        sent = cli("send", str(fixture), "--url", service.base_url + "/v1/mps/callback", "--key", "e2e-key")
        assert sent.returncode == 0, sent.stderr
        wait_until(lambda: len(receiver.requests) >= 2, 60, "task.finished at the webhook and the Apprise endpoint")
        [(message_id, queued)] = run(queue.take(1))
        [(object_event_id, archived)] = run(bucket.received(1))
    finally:
        service.stop()
        run(bucket.stop())
    hooks = [request for request in receiver.requests if request.path == "/hooks/mps"]
    [chat] = [request for request in receiver.requests if request.path == "/apprise"]
    assert len(receiver.requests) == 2 and [request.verified for request in hooks] == [True]
    hooked = orjson.loads(hooks[0].body)
    task_id = load_fixture(SUBTITLES)["WorkflowTaskEvent"]["TaskId"]
    assert hooked["type"] == "task.finished" and hooked["data"]["task_id"] == task_id
    assert subtitle_urls(hooked) == {OUTPUT_BASE + name for name in SUBTITLE_FILES}
    for envelope in (queued, archived):
        assert envelope == hooked  # one event, the same envelope whichever sink carries it
    assert hooked["id"] == message_id == object_event_id  # and its id as each sink's idempotency key
    posted = orjson.loads(chat.body)
    assert task_id in posted["title"] and task_id in posted["message"] and posted["type"] == "success"
    assert OUTPUT_BASE + "path-0.vtt" in posted["message"]


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


def test_a_hung_sink_holds_back_only_its_own_deliveries(database_url: str, receiver: Receiver):
    """Each sink has its own lane: while one receiver accepts connections and never answers (each attempt
    waits out the 10 s timeout), the other sink's deliveries go as fast as they come."""
    silent = socket.create_server(("127.0.0.1", 0))  # the kernel accepts; nobody ever reads or answers
    try:
        configured = sinks(
            webhook(
                f"http://127.0.0.1:{silent.getsockname()[1]}/hooks", name="stuck", events=["notification.received"]
            ),
            webhook(receiver.url(), name="ok", events=["notification.received"]),
        )
        owe(database_url, configured, [eof(f"lane-{number}") for number in range(30)], project=False)
        with forwarding(database_url, configured, batch_size=5):
            wait_until(lambda: len(receiver.verified) == 30, 8, "the healthy sink's 30 deliveries")
    finally:
        silent.close()
    assert {event["data"]["task_id"] for event in receiver.verified} == {f"lane-{number}" for number in range(30)}


def test_a_receiver_asking_to_wait_for_ever_is_retried_within_a_day(database_url: str, receiver: Receiver):
    """Retry-After past any date a database stores: the attempt is recorded and the next one is due in a day,
    and the batch's other deliveries are recorded too (no overflow loses the batch)."""
    receiver.answers += [(503, {"Retry-After": "999999999999"})]
    configured = sinks(webhook(receiver.url(), events=["notification.received"]))
    owe(database_url, configured, [eof("wait-1"), eof("wait-2")], project=False)
    assert forward(database_url, configured, passes=1) == 2
    rows = dict(query(database_url, sa.select(deliveries.c.status, deliveries.c.next_attempt_at)))
    assert sorted(rows) == ["delivered", "pending"]  # sent side by side: either one got the 503
    wait = rows["pending"].replace(tzinfo=UTC) - datetime.now(UTC)
    assert timedelta(hours=23) < wait <= timedelta(days=1)
    assert sorted(outcome for outcome, *_ in attempts(database_url)) == ["delivered", "retry"]
