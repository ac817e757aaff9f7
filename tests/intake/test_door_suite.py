"""The suite every queue door passes against its real transport (CMQ through its stand-in server, SQS through
moto): a message is journaled once and deleted only once durable; a redelivery is a duplicate; a message whose
notification could not be kept comes back and is kept then; a hopeless body is deleted, a forged one left; every
bad signature the HTTP doors refuse is refused here too, and no Sign is kept.

Each door's harness (``tests/support/doors.py`` `DoorHarness`) is a context manager factory in ``HARNESSES``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from mps_callback.send import stamp
from mps_callback.store.tables import notifications
from tests.support.checks import wait_until
from tests.support.cmq import cmq_harness
from tests.support.db import query
from tests.support.doors import EOF_BODY, TRANSCODE, DoorHarness, journaled, rounds, signed, sqlite
from tests.support.forgeries import SIGNATURE_CASES
from tests.support.service import InProcessService
from tests.support.sqs import sqs_door

#: Every door's harness factory; a door adds its own.
HARNESSES: dict[str, Callable[[], AbstractContextManager[DoorHarness]]] = {
    "cmq": cmq_harness,
    "sqs": sqs_door,
}

pytestmark = pytest.mark.brokers


@pytest.fixture(params=sorted(HARNESSES))
def door(request: pytest.FixtureRequest) -> Iterator[DoorHarness]:
    with HARNESSES[request.param]() as harness:
        yield harness


def test_a_message_is_journaled_once_and_deleted(door: DoorHarness, tmp_path: Path):
    url = sqlite(tmp_path)
    door.put(signed(TRANSCODE, "k"))
    [done] = rounds(door, url, notify_keys="k")
    assert done.results == {"accepted": 1} and done.acknowledged == 1
    assert journaled(url) == 1 and door.waiting() == 0
    [(channel, delivery, message_id)] = query(
        url, sa.select(notifications.c.channel, notifications.c.delivery, notifications.c.message_id)
    )
    assert channel == door.name and delivery["headers"]["message_id"] == message_id and message_id
    with InProcessService(url, tmp_path) as service:
        service.project()
        task = service.get(f"/v1/tasks/{TRANSCODE['WorkflowTaskEvent']['TaskId']}")
    assert task.status_code == 200 and task.json()["notification_count"] == 1


def test_a_redelivered_notification_is_a_duplicate(door: DoorHarness, tmp_path: Path):
    url = sqlite(tmp_path)
    door.put(signed(EOF_BODY, "k"))
    door.put(signed(EOF_BODY, "k"))
    results: dict[str, int] = {}
    for done in rounds(door, url, count=2, notify_keys="k"):
        for result, count in done.results.items():
            results[result] = results.get(result, 0) + count
    assert results == {"accepted": 1, "duplicate": 1}
    assert journaled(url) == 1 and door.waiting() == 0


def test_a_notification_not_kept_stays_in_the_queue_and_comes_back(door: DoorHarness, tmp_path: Path):
    """Database away and spool unwritable: not deleted; it comes back after the visibility timeout and is kept."""
    url = sqlite(tmp_path)
    (tmp_path / "a-file").write_text("where the spool should be")
    door.put(signed(EOF_BODY, "k"))
    [away] = rounds(door, "postgresql+asyncpg://nobody@127.0.0.1:1/none", spool_dir=tmp_path / "a-file" / "s")
    assert away.results == {"unavailable": 1} and away.acknowledged == 0
    assert door.waiting() == 1
    asyncio.run(asyncio.sleep(door.visibility_seconds))
    wait_until(lambda: rounds(door, url)[0].results.get("accepted") == 1, 10 + door.visibility_seconds, "redelivery")
    assert journaled(url) == 1 and door.waiting() == 0


def test_a_hopeless_body_is_deleted_and_a_forged_one_left(door: DoorHarness, tmp_path: Path):
    url = sqlite(tmp_path)
    door.put(b"this is not JSON")
    door.put(signed(TRANSCODE, "a-key-we-do-not-have"))
    done = rounds(door, url, notify_keys="k")[0]
    assert done.results == {"refused": 2} and done.acknowledged == 1
    assert journaled(url) == 0 and door.waiting() == 1


def test_every_bad_signature_is_refused_left_in_the_queue_and_no_sign_kept(door: DoorHarness, tmp_path: Path):
    """What the HTTP doors answer 401 (``test_door_security.py``) a queue door refuses the same way, and leaves
    the message for the transport's redelivery and dead-letter queue: a key being rotated in may yet take it."""
    url = sqlite(tmp_path)
    genuine = stamp(EOF_BODY, "k")
    for spoil, _ in SIGNATURE_CASES.values():
        door.put(orjson.dumps(spoil(genuine, "k")))
    door.put(orjson.dumps(genuine))
    [done] = rounds(door, url, notify_keys="k")
    assert done.results == {"refused": len(SIGNATURE_CASES), "accepted": 1} and done.acknowledged == 1
    assert journaled(url) == 1 and door.waiting() == len(SIGNATURE_CASES)
    [body] = query(url, sa.select(notifications.c.body))
    assert body[0]["Sign"] == "[redacted]" and genuine["Sign"] not in orjson.dumps(body[0]).decode()
