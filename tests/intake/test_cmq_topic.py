"""A CMQ topic pushing to our HTTP endpoint, in both of its message formats.

A topic subscription of protocol HTTP posts each message with ``Content-Type: text/plain`` and the
headers ``x-cmq-request-id`` and ``x-cmq-message-id``: in the JSON format the notification is the
``msgBody`` string of an envelope (``intake/envelope.py``), in the SIMPLIFIED format the body is the
message itself, the bare notification. Both are taken as they come, and CMQ's ids kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from mps_callback.send import stamp
from tests.support.bodies import load_fixture
from tests.support.service import InProcessService

KEY = "topic-push-key-3d8a1f"
EOF_BODY = load_fixture("examples/doc-live-ProcessEof.json")


def simplified(notification: dict[str, Any]) -> bytes:
    return orjson.dumps(notification)


def json_format(notification: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {
            "TopicOwner": 1250000000,
            "topicName": "mps-notify",
            "subscriptionName": "mps-callback",
            "msgId": "msg-topic-7",
            "msgBody": orjson.dumps(notification).decode(),
            "publishTime": 1700000000,
        }
    )


def push_headers(request_id: str) -> dict[str, str]:
    return {"content-type": "text/plain", "x-cmq-request-id": request_id, "x-cmq-message-id": "msg-topic-7"}


@pytest.fixture
def service(tmp_path: Path):
    with InProcessService(f"sqlite:///{tmp_path / 'j.db'}", tmp_path, notify_keys=KEY) as running:
        yield running


@pytest.mark.parametrize(("wrap", "wrapper"), [(simplified, "none"), (json_format, "cmq")])
def test_a_topic_push_is_taken_as_it_comes_with_cmq_s_ids_kept(service: InProcessService, wrap: Any, wrapper: str):
    notification = stamp(EOF_BODY, KEY)
    first = service.post(wrap(notification), headers=push_headers("req-1"))
    assert first.status_code == 200, first.text
    kept = service.get(f"/v1/notifications/{first.json()['notification_id']}").json()
    assert kept["wrapper"] == wrapper and kept["notification_type"] == "ProcessEof"
    assert kept["message_id"] == "msg-topic-7"  # the envelope's msgId, or in the SIMPLIFIED format the header's
    assert kept["body"]["TaskId"] == EOF_BODY["TaskId"]
    headers = kept["delivery"]["headers"]
    assert headers["x-cmq-request-id"] == "req-1" and headers["x-cmq-message-id"] == "msg-topic-7"
    assert headers["content-type"] == "text/plain"


@pytest.mark.parametrize("wrap", [simplified, json_format])
def test_a_topic_s_retry_is_a_duplicate(service: InProcessService, wrap: Any):
    """CMQ retries a push it did not see answered 2xx (a new request id, the same message): one row."""
    body = wrap(stamp(EOF_BODY, KEY))
    first = service.post(body, headers=push_headers("req-1"))
    again = service.post(body, headers=push_headers("req-2"))
    assert (first.status_code, again.status_code) == (200, 200)
    assert not first.json()["duplicate"] and again.json()["duplicate"]
    assert again.json()["notification_id"] == first.json()["notification_id"]
