"""Envelope fields are the sender's to choose: checked and clipped at intake, never a 500."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from mps_callback.errors import Refused
from mps_callback.intake.envelope import MAX_ATTRIBUTE_STRING_LENGTH, MAX_MESSAGE_ID_LENGTH, decode, unwrap
from tests.support.db import query
from tests.support.service import start_service

INNER = orjson.dumps({"NotificationType": "ProcessEof", "TaskId": "enveloped"}).decode()


def cmq(**fields: object) -> bytes:
    return orjson.dumps({"msgId": "m-1", "msgBody": INNER, **fields})


def cmq_with_deep_attribute(levels: int) -> bytes:
    """A CMQ push whose ``topicName`` is an array nested ``levels`` deep (orjson writes 255 at most)."""
    return cmq()[:-1] + b',"topicName":' + b"[" * levels + b"1" + b"]" * levels + b"}"


def test_a_deep_attribute_is_refused_as_too_deep():
    with pytest.raises(Refused) as caught:
        unwrap(decode(cmq_with_deep_attribute(300)))
    assert (caught.value.status, caught.value.code) == (400, "too_deep")


@pytest.mark.parametrize("message_id", [{"a": 1}, [1], True, 1.5])
def test_a_message_id_that_is_not_a_string_or_integer_is_refused(message_id: object):
    with pytest.raises(Refused) as caught:
        unwrap(decode(cmq(msgId=message_id)))
    assert caught.value.code == "bad_envelope"
    with pytest.raises(Refused):
        unwrap({"Response": {"RequestId": message_id, "TaskId": "t", "NotificationType": "ProcessEof"}})


def test_ids_names_and_strings_are_clipped_and_too_many_fields_refused():
    _, envelope = unwrap(decode(cmq(msgId="i" * 10_000, **{"n" * 500: "v" * 100_000, "nested": {"s": "w" * 100_000}})))
    assert envelope.message_id == "i" * MAX_MESSAGE_ID_LENGTH
    assert envelope.attributes["n" * 128] == "v" * MAX_ATTRIBUTE_STRING_LENGTH
    assert envelope.attributes["nested"]["s"] == "w" * MAX_ATTRIBUTE_STRING_LENGTH
    _, envelope = unwrap({"Response": {"RequestId": 12345, "TaskId": "t"}})
    assert envelope.message_id == "12345"
    with pytest.raises(Refused):
        unwrap(decode(cmq(**{f"f{index}": index for index in range(100)})))


@pytest.mark.process
def test_a_deep_envelope_attribute_is_a_quick_400_that_stores_nothing_and_leaves_no_temp_files(tmp_path: Path):
    service = start_service(f"sqlite:///{tmp_path / 'j.db'}", tmp_path)
    try:
        started = time.monotonic()
        response = service.post(cmq_with_deep_attribute(300))
        assert response.status_code == 400 and "deeper" in response.json()["message"], response.text
        assert time.monotonic() - started < 2
        assert service.post(cmq(msgId="i" * 1000)).status_code == 200
    finally:
        service.stop()
    assert query(service.database_url, "SELECT message_id FROM notifications") == [("i" * MAX_MESSAGE_ID_LENGTH,)]
    assert not list((tmp_path / "spool").rglob("*.tmp"))
