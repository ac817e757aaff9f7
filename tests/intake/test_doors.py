"""The rules every queue door keeps (``intake/doors.py``), on a stand-in queue and a real database:
acknowledge a message only once its notification is durable; leave the rest to come again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from mps_callback.intake.doors import consume, pump
from mps_callback.send import stamp, stamp_fields
from mps_callback.store.migrate import upgrade
from mps_callback.store.tables import notifications
from tests.support.bodies import load_fixture
from tests.support.db import query, run
from tests.support.doors import ListQueue, door_intake

EOF_BODY = load_fixture("examples/doc-live-ProcessEof.json")
TRANSCODE = load_fixture("examples/doc-vod-WorkflowTask-transcode.json")


def test_a_durable_notification_is_acknowledged_and_a_redelivery_is_a_duplicate(database_url: str):
    queue = ListQueue()
    queue.put(TRANSCODE)
    queue.put(TRANSCODE)  # MPS (or the transport) sent it twice

    async def go() -> None:
        async with door_intake(database_url) as intake:
            done = await pump(queue, intake)
            assert done.results == {"accepted": 1, "duplicate": 1} and done.acknowledged == 2

    run(go())
    assert queue.waiting == 0
    assert query(database_url, sa.select(sa.func.count()).select_from(notifications)) == [(1,)]
    [(channel, delivery)] = query(database_url, sa.select(notifications.c.channel, notifications.c.delivery))
    assert channel == "list" and delivery["headers"]["message_id"] == "msg-0"


def test_a_notification_not_durable_is_left_in_the_queue_and_kept_when_it_comes_again(tmp_path: Path):
    """Database away and spool unwritable: nothing acknowledged; both back, the redelivery is journaled once."""
    url = f"sqlite+aiosqlite:///{tmp_path}/doors.db"
    upgrade(url)
    (tmp_path / "not-a-dir").write_text("a file where the spool should be")
    queue = ListQueue()
    queue.put(EOF_BODY)

    async def away() -> None:
        async with door_intake(
            "postgresql+asyncpg://nobody@127.0.0.1:1/none", tmp_path / "not-a-dir" / "spool"
        ) as intake:
            done = await pump(queue, intake)
            assert done.results == {"unavailable": 1} and done.acknowledged == 0

    run(away())
    assert queue.waiting == 1

    async def back() -> None:
        async with door_intake(url) as intake:
            assert (await pump(queue, intake)).results == {"accepted": 1}

    run(back())
    assert queue.waiting == 0
    assert query(url, sa.select(sa.func.count()).select_from(notifications)) == [(1,)]


def test_a_spooled_notification_is_durable_and_acknowledged(tmp_path: Path):
    queue = ListQueue()
    queue.put(EOF_BODY)

    async def go() -> None:
        async with door_intake("postgresql+asyncpg://nobody@127.0.0.1:1/none", tmp_path / "spool") as intake:
            assert (await pump(queue, intake)).results == {"spooled": 1}

    run(go())
    assert queue.waiting == 0 and len(list((tmp_path / "spool").glob("*"))) >= 1


@pytest.mark.parametrize(
    ("body", "acknowledged"),
    [
        (b"not json at all", True),  # can never be a notification: dropped with a log line
        (b"[1, 2]", True),
        (b'{"a":' * 300 + b"1" + b"}" * 300, True),
        (None, False),  # a bad signature: the operator may fix MPS_NOTIFY_KEYS; left for the dead-letter queue
    ],
)
def test_refusals_are_acknowledged_only_when_hopeless(tmp_path: Path, body: bytes | None, acknowledged: bool):
    url = f"sqlite+aiosqlite:///{tmp_path}/doors.db"
    upgrade(url)
    queue = ListQueue()
    queue.put(body if body is not None else stamp(TRANSCODE, "the-wrong-key"))

    async def go() -> None:
        async with door_intake(url, notify_keys="the-right-key" if body is None else "") as intake:
            assert (await pump(queue, intake)).results == {"refused": 1}

    run(go())
    assert (queue.waiting == 0) is acknowledged
    assert query(url, sa.select(sa.func.count()).select_from(notifications)) == [(0,)]


def test_consume_waits_out_a_failing_transport_and_goes_on(tmp_path: Path):
    url = f"sqlite+aiosqlite:///{tmp_path}/doors.db"
    upgrade(url)
    queue = ListQueue(fail_receives=2)
    queue.put(EOF_BODY)

    async def go() -> None:
        async with door_intake(url) as intake:
            running = asyncio.create_task(consume(queue, intake))
            for _ in range(100):
                if queue.waiting == 0:
                    break
                await asyncio.sleep(0.1)
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)

    run(go())
    assert queue.waiting == 0 and queue.receives >= 3


@pytest.mark.parametrize(("queued_minutes_ago", "result"), [(30, "accepted"), (0, "refused")])
def test_a_queued_notification_s_expiry_is_read_against_when_it_was_queued(
    tmp_path: Path, queued_minutes_ago: int, result: str
):
    """Signed 30 minutes ago (its Timestamp expired 20 minutes ago): taken if the queue took it in then (the
    consumer was down), refused if it was queued just now (a replay of an old notification)."""
    url = f"sqlite+aiosqlite:///{tmp_path}/doors.db"
    upgrade(url)
    signed_at = datetime.now(UTC) - timedelta(minutes=30)
    queue = ListQueue()
    queue.put(
        stamp_fields(EOF_BODY, "k", signed_at.timestamp()), datetime.now(UTC) - timedelta(minutes=queued_minutes_ago)
    )

    async def go() -> None:
        async with door_intake(url, notify_keys="k") as intake:
            assert (await pump(queue, intake)).results == {result: 1}

    run(go())
    assert queue.waiting == (0 if result == "accepted" else 1)


def test_an_enqueue_time_no_queue_could_have_is_not_believed(tmp_path: Path):
    """A zero enqueue time (1970) would make every notification look a day in the future: the clock is now."""
    url = f"sqlite+aiosqlite:///{tmp_path}/doors.db"
    upgrade(url)
    queue = ListQueue()
    queue.put(stamp_fields(EOF_BODY, "k"), datetime.fromtimestamp(0, UTC))

    async def go() -> None:
        async with door_intake(url, notify_keys="k") as intake:
            assert (await pump(queue, intake)).results == {"accepted": 1}

    run(go())
