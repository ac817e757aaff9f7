"""The TDMQ-CMQ queue door (``intake/cmq.py``) against the stand-in CMQ server (``tests/support/cmq_standin.py``).

What the shared door suite does not show: CMQ's signature, its visibility timeout and long poll, a
delete that fails, the metadata kept, the credentials kept out of everything, a bad configuration,
and a consumer killed with SIGKILL between receiving a message and committing it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from anyio.from_thread import start_blocking_portal
from sqlalchemy.pool import NullPool

from mps_callback.intake.cmq import CmqClient, CmqError, CmqQueue, Credentials, signature, string_to_sign
from mps_callback.intake.doors import Round, pump
from mps_callback.send import stamp, stamp_fields
from mps_callback.store.engine import create_engine
from mps_callback.store.migrate import upgrade
from mps_callback.store.tables import notifications
from tests.support.bodies import load_fixture
from tests.support.checks import assert_no_secret, wait_until
from tests.support.cli import cli, one_line_error
from tests.support.cmq import SECRET_ID, SECRET_KEY, cmq_standin, environment, send
from tests.support.cmq_standin import AUTH_FAILED, CmqStandIn
from tests.support.db import migrated, query, run
from tests.support.doors import door_intake

pytestmark = pytest.mark.brokers
KEY = "cmq-notify-key-71c4e0"
EOF_BODY = load_fixture("examples/doc-live-ProcessEof.json")
CREDENTIALS = {"SecretId": SECRET_ID, "SecretKey": SECRET_KEY}


def notification() -> str:
    """A notification as MPS puts it on the queue: signed JSON text, the message's ``msgBody``."""
    return orjson.dumps(stamp(EOF_BODY, KEY)).decode()


def queue(standin: CmqStandIn, secret_key: str = SECRET_KEY) -> CmqQueue:
    return CmqQueue(CmqClient(standin.url, Credentials(SECRET_ID, secret_key)), standin.queue)


def sqlite(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path}/cmq.db"
    upgrade(url)
    return url


def pumped(standin: CmqStandIn, url: str, count: int = 1) -> list[Round | Exception]:
    """``count`` rounds of the door into ``url``: what each did, or what it raised."""

    async def go() -> list[Round | Exception]:
        door, done = queue(standin), []
        try:
            async with door_intake(url, notify_keys=KEY) as intake:
                for _ in range(count):
                    try:
                        done.append(await pump(door, intake))
                    except CmqError as error:
                        done.append(error)
        finally:
            await door.close()
        return done

    return run(go())


def rows(url: str) -> list[Any]:
    return query(url, sa.select(notifications.c.channel, notifications.c.delivery, notifications.c.body))


@pytest.fixture
def standin() -> Iterator[CmqStandIn]:
    with cmq_standin(visibility_seconds=1.0) as running:
        yield running


# ---------------------------------------------------------------- the signature


def test_the_signature_is_cmq_s_hmac_sha256_over_the_sorted_parameters():
    """A fixed vector, computed outside Python (``openssl dgst -sha256 -hmac ... -binary | base64``)."""
    params = {
        "queueName": "mps-notify",
        "numOfMsg": "16",
        "pollingWaitSeconds": "30",
        "Action": "BatchReceiveMessage",
        "Nonce": "2107931",
        "Timestamp": "1700000000",
        "SecretId": "AKIDexample",
        "SignatureMethod": "HmacSHA256",
    }
    host = "cmq-gz.public.tencenttdmq.com"
    assert string_to_sign(host, params) == (
        "POSTcmq-gz.public.tencenttdmq.com/v2/index.php?Action=BatchReceiveMessage&Nonce=2107931"
        "&SecretId=AKIDexample&SignatureMethod=HmacSHA256&Timestamp=1700000000&numOfMsg=16"
        "&pollingWaitSeconds=30&queueName=mps-notify"
    )
    assert signature("example-secret-key", host, params) == "Nfiq7NBqLxwISnhDPqu7WlRroUZ/mTGMfQ8rvIWgqE8="


def test_a_wrong_key_is_refused_and_nothing_is_received(standin: CmqStandIn):
    send(standin, notification())

    async def go() -> CmqError:
        door = queue(standin, secret_key="not-the-key")
        try:
            with pytest.raises(CmqError) as refused:
                await door.receive()
            return refused.value
        finally:
            await door.close()

    error = run(go())
    assert error.code == AUTH_FAILED and standin.refused == 1
    assert standin.waiting() == 1 and standin.in_flight() == 0
    assert_no_secret({"the error": str(error)}, {"wrong key": "not-the-key", **CREDENTIALS})


# ---------------------------------------------------------------- CMQ's queue behaviour


def test_a_message_not_deleted_comes_back_after_the_visibility_timeout(tmp_path: Path):
    with cmq_standin(visibility_seconds=2.0, longest_poll_seconds=0.2) as standin:
        message_id = send(standin, notification())

        async def go() -> list[list[dict[str, str]]]:
            door, received = queue(standin), []
            try:
                received.append([message.delivery.headers for message in await door.receive()])
                received.append([message.delivery.headers for message in await door.receive()])  # in flight
                while len(received) < 3 or not received[-1]:
                    received.append([message.delivery.headers for message in await door.receive()])
            finally:
                await door.close()
            return received

        first, hidden, *_, again = run(asyncio.wait_for(go(), 30))
    assert [(h["message_id"], h["receive_count"]) for h in first] == [(message_id, "1")]
    assert hidden == []
    assert [(h["message_id"], h["receive_count"]) for h in again] == [(message_id, "2")]


@pytest.mark.parametrize("failure", ["the whole call", "one of the handles"])
def test_a_delete_that_fails_leaves_the_message_to_come_again_as_a_duplicate(
    standin: CmqStandIn, tmp_path: Path, failure: str, caplog: pytest.LogCaptureFixture
):
    url = sqlite(tmp_path)
    failing = send(standin, notification())
    other = stamp(load_fixture("examples/doc-vod-WorkflowTask-transcode.json"), KEY)
    send(standin, orjson.dumps(other).decode())
    if failure == "the whole call":
        standin.fail_all_deletes = True
    else:
        standin.failing_deletes = {failing}

    with caplog.at_level(logging.WARNING, "mps_callback.intake.cmq"):
        [failed] = pumped(standin, url)
    assert isinstance(failed, CmqError) and "not deleted" in str(failed)
    assert [record.getMessage() for record in caplog.records if record.name == "mps_callback.intake.cmq"] == [
        "CMQ messages not deleted; they come again and are duplicates"
    ]
    assert len(rows(url)) == 2 and standin.waiting() == (2 if failure == "the whole call" else 1)

    standin.fail_all_deletes, standin.failing_deletes = False, set()
    wait_until(lambda: standin.in_flight() == 0, 10, "the visibility timeout to pass")
    again = pumped(standin, url)[0]
    came_again = 2 if failure == "the whole call" else 1
    assert isinstance(again, Round) and again.results == {"duplicate": came_again} and again.acknowledged == came_again
    assert len(rows(url)) == 2 and standin.waiting() == 0


def test_a_long_poll_returns_as_soon_as_a_message_arrives():
    with cmq_standin(longest_poll_seconds=60) as standin:

        async def go() -> list[str]:
            door = queue(standin)
            try:
                polling = asyncio.create_task(door.receive())
                started = lambda: "BatchReceiveMessage" in standin.actions()  # noqa: E731 (one use, one line)
                await asyncio.to_thread(wait_until, started, 20, "the long poll to start")
                await asyncio.to_thread(send, standin, notification())
                return [message.delivery.headers["message_id"] for message in await asyncio.wait_for(polling, 20)]
            finally:
                await door.close()

        [message_id] = run(go())
        assert standin.waiting() == 1 and standin.in_flight() == 1
        assert message_id in standin.messages


def test_cmq_s_metadata_is_kept_with_the_notification(standin: CmqStandIn, tmp_path: Path):
    url = sqlite(tmp_path)
    message_id = send(standin, notification())
    [done] = pumped(standin, url)
    assert isinstance(done, Round) and done.results == {"accepted": 1} and done.acknowledged == 1
    [(channel, delivery, body)] = rows(url)
    headers = delivery["headers"]
    assert channel == "cmq" and body["TaskId"] == EOF_BODY["TaskId"]
    assert headers["message_id"] == message_id and headers["receive_count"] == "1"
    assert headers["enqueue_time"].isdigit() and set(headers) == {"message_id", "receive_count", "enqueue_time"}


# ---------------------------------------------------------------- what waited, what is hostile


def test_a_notification_that_waited_in_the_queue_past_its_expiry_is_taken(standin: CmqStandIn, tmp_path: Path):
    """MPS's Timestamp is an expiry time (sent + 600 s). A queue is there for the hours a consumer is down:
    a notification queued in time is judged by when it was queued, not by when it was received."""
    url = sqlite(tmp_path)
    sent_30_minutes_ago = time.time() - 1800  # its Timestamp: expired 20 minutes ago
    standin.put(
        orjson.dumps(stamp_fields(EOF_BODY, KEY, sent_30_minutes_ago)).decode(), enqueued_at=sent_30_minutes_ago
    )
    [done] = pumped(standin, url)
    assert isinstance(done, Round) and done.results == {"accepted": 1} and done.acknowledged == 1
    assert len(rows(url)) == 1 and standin.waiting() == 0


def test_an_expired_notification_queued_now_is_still_refused(standin: CmqStandIn, tmp_path: Path):
    """A replay: an old notification put on the queue today is as expired as it would be over HTTP."""
    url = sqlite(tmp_path)
    standin.put(orjson.dumps(stamp_fields(EOF_BODY, KEY, time.time() - 1800)).decode())
    [done] = pumped(standin, url)
    assert isinstance(done, Round) and done.results == {"refused": 1} and done.acknowledged == 0
    assert rows(url) == [] and standin.waiting() == 1


def test_a_hostile_message_costs_only_itself_not_its_batch(standin: CmqStandIn, tmp_path: Path):
    """A lone surrogate in msgBody (valid JSON escaped, not encodable as UTF-8) is one hopeless message: refused
    and deleted, while the good notification received in the same batch is kept and deleted."""
    url = sqlite(tmp_path)
    standin.put(
        '{"NotificationType": "ProcessEof", "TaskId": "\ud800"}'
    )  # a str holding a lone surrogate, as JSON text can
    send(standin, notification())
    [done] = pumped(standin, url)
    assert isinstance(done, Round) and done.results == {"refused": 1, "accepted": 1} and done.acknowledged == 2
    assert len(rows(url)) == 1 and standin.waiting() == 0


def test_the_credentials_are_nowhere(standin: CmqStandIn, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    """Not in a log line, a journal row, an error, or on the wire (only the signature and the SecretId go)."""
    url = sqlite(tmp_path)
    send(standin, notification())
    standin.fail_all_deletes = True
    with caplog.at_level(logging.DEBUG):
        [failed] = pumped(standin, url)
    assert isinstance(failed, CmqError)
    requests = [{name: value for name, value in form.items() if name != "SecretId"} for form in standin.requests]
    assert_no_secret({"logs": caplog.text, "rows": rows(url), "error": str(failed), "requests": requests}, CREDENTIALS)
    assert all(form["SecretId"] == SECRET_ID for form in standin.requests)  # the id goes where CMQ wants it


# ---------------------------------------------------------------- configuration


@pytest.mark.process
@pytest.mark.parametrize(
    ("settings", "credentials", "reason"),
    [
        ({"MPS_CMQ_QUEUE": "mps-notify"}, True, "MPS_CMQ_ENDPOINT"),
        ({"MPS_CMQ_ENDPOINT": "https://cmq-gz.public.tencenttdmq.com"}, True, "MPS_CMQ_QUEUE"),
        ({"MPS_CMQ_ENDPOINT": "cmq-gz.public.tencenttdmq.com", "MPS_CMQ_QUEUE": "q"}, True, "http(s) URL"),
        ({"MPS_CMQ_ENDPOINT": "https://cmq-gz.public.tencenttdmq.com", "MPS_CMQ_QUEUE": "q"}, False, "TENCENTCLOUD"),
    ],
)
@pytest.mark.parametrize("command", ["consume", "serve"])
def test_a_bad_cmq_configuration_stops_start_up_with_one_line(
    command: str, settings: dict[str, str], credentials: bool, reason: str
):
    secrets = {"TENCENTCLOUD_SECRET_ID": SECRET_ID if credentials else "", "TENCENTCLOUD_SECRET_KEY": SECRET_KEY}
    line = one_line_error(cli(command, env=settings | secrets), 2)
    assert "bad configuration" in line and reason in line
    assert_no_secret({"the line": line}, CREDENTIALS)


# ---------------------------------------------------------------- kill -9


def consumer(url: str, standin: CmqStandIn, tmp_path: Path, log: Path) -> subprocess.Popen[bytes]:
    """``mps-callback consume`` on the stand-in; a journal budget long enough that it waits for the database."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("MPS_")} | environment(standin)
    env |= {
        "MPS_DATABASE_URL": url,
        "MPS_CMQ_ENDPOINT": standin.url,
        "MPS_CMQ_QUEUE": standin.queue,
        "MPS_NOTIFY_KEYS": KEY,
        "MPS_SPOOL_DIR": str(tmp_path / "spool"),
        "MPS_JOURNAL_BUDGET_SECONDS": "25",
        "MPS_LOG_LEVEL": "DEBUG",
    }
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "mps_callback", "consume"], env=env, stdout=output, stderr=subprocess.STDOUT
        )


@asynccontextmanager
async def notifications_locked(url: str) -> AsyncIterator[None]:
    """The notifications table locked against inserts (reads go on) until the block ends: the journal's commit waits."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection, connection.begin():
            await connection.execute(sa.text("LOCK TABLE notifications IN EXCLUSIVE MODE"))
            yield
    finally:
        await engine.dispose()


def waiting_for_the_lock(url: str) -> bool:
    """Whether a session of the database waits for a lock: the consumer's journal commit, held up by the test."""
    statement = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
    return int(query(url, statement)[0][0]) > 0


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    """The kill needs a database whose sessions show what they wait for: PostgreSQL's pg_stat_activity."""
    yield from migrated("postgres", tmp_path)


@pytest.mark.process
@pytest.mark.faults
@pytest.mark.postgres
def test_a_consumer_killed_between_receive_and_commit_loses_nothing_and_doubles_nothing(
    postgres_url: str, tmp_path: Path
):
    url, log = postgres_url, tmp_path / "consume.log"
    with cmq_standin(visibility_seconds=2.0) as standin, start_blocking_portal() as portal, ExitStack() as lock:
        first = consumer(url, standin, tmp_path, log)
        try:
            wait_until(lambda: "BatchReceiveMessage" in standin.actions(), 30, "the consumer's first poll")
            lock.enter_context(portal.wrap_async_context_manager(notifications_locked(url)))
            message_id = send(standin, notification())
            wait_until(lambda: waiting_for_the_lock(url), 30, "the consumer's commit to wait for the lock")
            assert standin.in_flight() == 1  # received, and in the middle of its commit
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            lock.close()
        assert rows(url) == [] and standin.waiting() == 1  # received, never committed, never deleted
        assert not [path for path in (tmp_path / "spool").rglob("*") if not path.name.startswith(".")]  # not spooled

        second = consumer(url, standin, tmp_path, log)
        try:
            wait_until(lambda: standin.waiting() == 0, 30, "the message to be journaled and deleted after restart")
        finally:
            second.terminate()
            assert second.wait(10) == 0, log.read_text()
    [(channel, delivery, _)] = rows(url)
    assert channel == "cmq" and delivery["headers"]["message_id"] == message_id
    assert delivery["headers"]["receive_count"] == "2"  # the second delivery of the same message
    assert_no_secret({"the consumer's log": log.read_text()}, CREDENTIALS)
