"""The SQS door against moto: what the shared suite does not say of SQS in particular.

Redelivery counts its receives; a forged message goes to the dead-letter queue by the queue's redrive
policy; a slow batch stays invisible (the heartbeat); the message id, receive count and sent time are
kept; an SNS envelope is unwrapped; credentials appear nowhere; and a consumer killed -9 between
receive and commit loses nothing and doubles nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from mps_callback import metrics
from mps_callback.config import Settings
from mps_callback.intake.doors import pump
from mps_callback.intake.sqs import configuration_error, notification_bytes, open_queue, region_of
from mps_callback.journal.entry import JournalEntry, Receipt
from mps_callback.journal.group_commit import GroupCommitJournal
from mps_callback.store.tables import notifications
from tests.support.checks import wait_until
from tests.support.cli import cli, one_line_error
from tests.support.db import query, run
from tests.support.doors import EOF_BODY, TRANSCODE, door_intake, environment, journaled, rounds, signed, sqlite
from tests.support.sqs import ACCESS_KEY_ID, SECRET_ACCESS_KEY, SqsDoor, sqs_door

pytestmark = pytest.mark.brokers


@pytest.fixture
def door() -> Iterator[SqsDoor]:
    with sqs_door() as harness:
        yield harness


def deliveries(url: str) -> list[dict[str, Any]]:
    return [row[0] for row in query(url, sa.select(notifications.c.delivery))]


def test_a_redelivery_is_counted_and_kept_once(door: SqsDoor, tmp_path: Path):
    url = sqlite(tmp_path)
    (tmp_path / "a-file").write_text("where the spool should be")
    door.put(signed(EOF_BODY, "k"))
    [away] = rounds(door, "postgresql+asyncpg://nobody@127.0.0.1:1/none", spool_dir=tmp_path / "a-file" / "s")
    assert away.results == {"unavailable": 1}
    asyncio.run(asyncio.sleep(door.visibility_seconds))
    [again] = rounds(door, url, notify_keys="k")
    assert again.results == {"accepted": 1} and journaled(url) == 1 and door.waiting() == 0
    [delivery] = deliveries(url)
    assert delivery["headers"]["receive_count"] == "2"


def test_a_forged_message_lands_in_the_dead_letter_queue_and_a_hopeless_one_is_deleted(tmp_path: Path):
    url = sqlite(tmp_path)
    with sqs_door(visibility_seconds=1, max_receive_count=2) as door:
        door.put(b"{not json")
        forged = door.send(signed(TRANSCODE, "a-key-we-do-not-have"))
        first = rounds(door, url, notify_keys="k")[0]
        assert first.results == {"refused": 2} and first.acknowledged == 1
        for _ in range(2):  # the second receive, refused again; the third finds it moved away
            asyncio.run(asyncio.sleep(door.visibility_seconds + 0.2))
            rounds_done = rounds(door, url, notify_keys="k")
            assert rounds_done[0].acknowledged == 0
        assert door.waiting() == 0 and journaled(url) == 0
        assert [message["MessageId"] for message in door.dead_letters()] == [forged]


def test_the_message_id_receive_count_and_sent_time_are_kept(door: SqsDoor, tmp_path: Path):
    url = sqlite(tmp_path)
    message_id = door.send(signed(TRANSCODE, "k"))
    rounds(door, url, notify_keys="k")
    [delivery] = deliveries(url)
    headers = delivery["headers"]
    assert headers["message_id"] == message_id and headers["receive_count"] == "1"
    assert headers["sent_timestamp"].isdigit()


def test_an_sns_envelope_is_unwrapped_to_its_notification(door: SqsDoor, tmp_path: Path):
    url = sqlite(tmp_path)
    inner = signed(TRANSCODE, "k")
    envelope = {"Type": "Notification", "TopicArn": "arn:aws:sns:us-east-1:1:mps", "Message": inner.decode()}
    door.put(orjson.dumps(envelope))
    [done] = rounds(door, url, notify_keys="k")
    assert done.results == {"accepted": 1} and notification_bytes(orjson.dumps(envelope).decode()) == inner


def test_a_failed_delete_is_counted_not_raised(door: SqsDoor):
    """An entry SQS will not delete comes back (a duplicate then): the batch's other entries are deleted."""
    door.put(b"{}")
    errors = metrics.DOOR_ERRORS.labels("sqs")
    before = errors._value.get()

    async def go() -> int:
        with environment(door.environment):
            queue = open_queue(Settings(_env_file=None, **door.settings), wait_seconds=1)
            try:
                [message] = await queue.receive()
                await queue.acknowledge([message.handle, "not-a-receipt-handle"])
                return door.waiting()
            finally:
                await queue.close()

    assert run(go()) == 0
    assert errors._value.get() == before + 1


class SlowJournal:
    """A journal that takes ``seconds`` before each append: a batch outlasting the visibility timeout."""

    def __init__(self, inner: GroupCommitJournal, seconds: float) -> None:
        self.inner, self.seconds = inner, seconds

    async def append(self, entry: JournalEntry) -> Receipt:
        await asyncio.sleep(self.seconds)
        return await self.inner.append(entry)


def test_a_slow_batch_stays_invisible_to_another_consumer(door: SqsDoor, tmp_path: Path):
    """Visibility 2 s, the journal 5 s: without the heartbeat the message reappears to the other consumer."""
    url = sqlite(tmp_path)
    door.put(signed(EOF_BODY, "k"))

    async def go() -> tuple[Any, list[Any]]:
        seen: list[Any] = []
        with environment(door.environment):
            queue = open_queue(Settings(_env_file=None, **door.settings), wait_seconds=1)
            try:
                async with door_intake(
                    url, wrap=lambda journal: SlowJournal(journal, 2.5 * door.visibility_seconds)
                ) as intake:
                    taking = asyncio.create_task(pump(queue, intake))
                    await asyncio.to_thread(
                        wait_until, lambda: door.counts() == (0, 1), 10, "our consumer has it first"
                    )
                    while not taking.done():
                        answer = await asyncio.to_thread(
                            door.client.receive_message, QueueUrl=door.queue_url, WaitTimeSeconds=1
                        )
                        seen += answer.get("Messages", [])
                    return await taking, seen
            finally:
                await queue.close()

    done, seen = run(go())
    assert seen == [] and done.results == {"accepted": 1}
    assert journaled(url) == 1 and door.waiting() == 0


def test_credentials_appear_nowhere(door: SqsDoor, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    url = sqlite(tmp_path)
    door.put(signed(TRANSCODE, "k"))
    door.put(b"not json")
    with caplog.at_level(logging.DEBUG):
        rounds(door, url, notify_keys="k")
    stored = orjson.dumps([list(row) for row in query(url, sa.select(notifications))], default=str).decode()
    ours = [repr(record.__dict__) for record in caplog.records if record.name.startswith("mps_callback")]
    assert ours  # the door logged its notifications: there was something to leak
    exposed = "".join(ours) + stored + metrics.exposition().decode()
    for secret in (SECRET_ACCESS_KEY, ACCESS_KEY_ID):
        assert secret not in exposed


@pytest.mark.process
@pytest.mark.parametrize(
    ("settings", "environment_", "reason"),
    [
        ({"MPS_SQS_QUEUE_URL": "sqs://queue"}, {}, "MPS_SQS_QUEUE_URL must be an http(s) URL"),
        ({"MPS_SQS_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/"}, {}, "names no queue"),
        ({"MPS_SQS_QUEUE_URL": "http://127.0.0.1:1/1/q"}, {"AWS_DEFAULT_REGION": ""}, "no region"),
        (
            {"MPS_SQS_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/1/q"},
            {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY},
            "set together",
        ),
    ],
)
def test_bad_configuration_stops_consume_with_one_line(
    settings: dict[str, str], environment_: dict[str, str], reason: str, tmp_path: Path
):
    env = {"MPS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/c.db"} | settings
    with environment({"AWS_REGION": "", "AWS_DEFAULT_REGION": "", **environment_}):
        line = one_line_error(cli("consume", env=env), 2)
    assert reason in line and SECRET_ACCESS_KEY not in line


def test_the_region_comes_from_an_aws_queue_url():
    assert region_of("https://sqs.ap-guangzhou-1.amazonaws.com/1/q") == "ap-guangzhou-1"
    assert region_of("https://eu-west-1.queue.amazonaws.com/1/q") == "eu-west-1"
    assert region_of("http://127.0.0.1:5000/1/q") is None
    with environment(
        {"AWS_REGION": "", "AWS_DEFAULT_REGION": "", "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    ):
        assert (
            configuration_error(Settings(_env_file=None, sqs_queue_url="https://sqs.us-east-2.amazonaws.com/1/q"))
            is None
        )


# ---------------------------------------------------------------- kill -9 between receive and commit


@contextmanager
def consumer(url: str, door: SqsDoor, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``mps-callback consume`` on ``door``'s queue; its journal waits a minute for the database before spooling."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MPS_")} | door.environment
    env |= {
        "MPS_DATABASE_URL": url,
        "MPS_SQS_QUEUE_URL": door.queue_url,
        "MPS_SQS_ENDPOINT_URL": door.endpoint,
        "MPS_NOTIFY_KEYS": "k",
        "MPS_JOURNAL_BUDGET_SECONDS": "60",
        "MPS_SPOOL_DIR": str(log.parent / "spool"),
    }
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "mps_callback", "consume"], env=env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(10)


@pytest.mark.process
@pytest.mark.faults
def test_a_consumer_killed_between_receive_and_commit_loses_and_doubles_nothing(door: SqsDoor, tmp_path: Path):
    url = sqlite(tmp_path)
    log = tmp_path / "consume.log"
    lock = sqlite3.connect(tmp_path / "door.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # the journal cannot commit: the consumer holds the message, uncommitted
    door.put(signed(EOF_BODY, "k"))
    with consumer(url, door, log) as first:
        wait_until(lambda: door.counts() == (0, 1), 30, "the consumer received the message")
        first.send_signal(signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
    lock.execute("ROLLBACK")
    lock.close()
    assert journaled(url) == 0 and door.waiting() == 1
    with consumer(url, door, log):
        wait_until(lambda: journaled(url) == 1 and door.waiting() == 0, 30 + door.visibility_seconds, log.read_text)
    assert journaled(url) == 1
    [delivery] = deliveries(url)
    assert delivery["headers"]["receive_count"] == "2"
