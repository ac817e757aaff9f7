import orjson
import pytest

from mps_callback.errors import Refused
from mps_callback.intake.envelope import decode, unwrap
from tests.support.bodies import load_fixture


def test_cmq_envelope_is_unwrapped_and_its_ids_kept():
    notification = load_fixture("examples/doc-live-ProcessEof.json")
    envelope_body = {
        "TopicOwner": 1250000000,
        "topicName": "mps-topic",
        "subscriptionName": "callback",
        "msgId": "123456789",
        "msgBody": orjson.dumps(notification).decode(),
        "publishTime": 1700000000000,
    }
    inner, envelope = unwrap(decode(orjson.dumps(envelope_body)))
    assert inner == notification
    assert (envelope.wrapper, envelope.message_id) == ("cmq", "123456789")
    assert envelope.attributes["topicName"] == "mps-topic" and "msgBody" not in envelope.attributes


def test_cmq_envelope_with_a_body_that_is_not_json_is_refused():
    with pytest.raises(Refused) as caught:
        unwrap({"msgId": "1", "msgBody": "not json"})
    assert caught.value.status == 400


def test_api_response_wrapper_is_unwrapped():
    wrapped = {"Response": {"NotificationType": "ProcessEof", "TaskId": "t", "RequestId": "req-1"}}
    inner, envelope = unwrap(wrapped)
    assert inner == {"NotificationType": "ProcessEof", "TaskId": "t"}
    assert (envelope.wrapper, envelope.message_id) == ("api-response", "req-1")


def test_a_literal_backslash_u0000_is_not_a_nul():
    assert decode(b'{"EventType": "WorkflowTask", "X": "\\\\u0000"}')["X"] == "\\u0000"


def test_a_bare_notification_is_its_own_envelope():
    body = {"EventType": "WorkflowTask"}
    inner, envelope = unwrap(body)
    assert inner is body and envelope.wrapper == "none"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty body"),
        (b"   \n", "empty body"),
        (b"not json", "not valid JSON"),
        (b'{"EventType": "WorkflowTask"', "not valid JSON"),
        (b'{"a": "\xff\xfe"}', "not valid JSON"),
        (b"[1, 2]", "not an array"),
        (b'"text"', "not a string"),
        (b"42", "not a number"),
        (b"null", "not null"),
        (b"[" * 10_000 + b"]" * 10_000, "not valid JSON"),
        (b'{"EventType": "WorkflowTask", "X": ["a\\u0000b"]}', "U+0000"),
        (b'{"EventType": "WorkflowTask", "a\\u0000": 1}', "U+0000"),
    ],
)
def test_bodies_that_are_not_one_json_object_are_refused(raw: bytes, reason: str):
    with pytest.raises(Refused) as caught:
        decode(raw)
    assert caught.value.status == 400 and reason in caught.value.reason
