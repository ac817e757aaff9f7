from pathlib import Path
from typing import Any

import pytest

from mps_callback.errors import Refused
from mps_callback.mps import dedupe_key
from mps_callback.verify.shape import check_depth, recognise
from tests.support.bodies import FIXTURES, fixture_files, load_fixture


@pytest.mark.parametrize("path", fixture_files("vod"), ids=lambda p: p.name)
def test_every_vod_fixture_is_a_file_task(path: Path) -> None:
    body = load_fixture(path)
    shape = recognise(body)
    assert shape.kind == "vod"
    assert shape.event_type == body["EventType"]
    assert shape.notification_type is None
    if body["EventType"] != "BatchTask":
        assert shape.task_id and shape.task_id.startswith("2400002-")


@pytest.mark.parametrize("path", fixture_files("live"), ids=lambda p: p.name)
def test_every_live_fixture_is_a_live_task(path: Path) -> None:
    body = load_fixture(path)
    shape = recognise(body)
    assert (shape.kind, shape.notification_type, shape.task_id) == ("live", body["NotificationType"], body["TaskId"])
    assert shape.session_context == "user-42"


def test_batch_task_has_no_task_id_and_is_kept() -> None:
    shape = recognise(load_fixture("vod/BatchTask.json"))
    assert shape.task_id is None and shape.event_type == "BatchTask"


def test_real_captured_body_with_undocumented_keys() -> None:
    shape = recognise(load_fixture(FIXTURES / "captured/terraform-WorkflowTask.json"))
    assert shape.task_id == "2600010949-WorkflowTask-764a7f3ca6f6eb13cda2048cfb034025tt7"


def test_unknown_event_type_finds_its_task_by_task_id() -> None:
    body = {"EventType": "ProcedureStateChanged", "ProcedureStateChangeEvent": {"TaskId": "t-1", "Status": "FINISH"}}
    shape = recognise(body)
    assert (shape.kind, shape.event_type, shape.task_id) == ("vod", "ProcedureStateChanged", "t-1")


def test_unknown_notification_type_is_kept() -> None:
    shape = recognise({"NotificationType": "AiSomethingNew", "TaskId": "live-1"})
    assert (shape.kind, shape.type, shape.task_id) == ("live", "AiSomethingNew", "live-1")


@pytest.mark.parametrize(
    "body",
    [{}, {"eventType": "ConcatComplete"}, {"EventType": 5}, {"EventType": ""}, {"NotificationType": None}],
)
def test_neither_shape_is_refused_with_400(body: dict[str, Any]) -> None:
    with pytest.raises(Refused) as caught:
        recognise(body)
    assert caught.value.status == 400 and "EventType" in caught.value.reason


def test_overlong_task_id_is_refused_not_truncated() -> None:
    with pytest.raises(Refused) as caught:
        recognise({"NotificationType": "ProcessEof", "TaskId": "t" * 256})
    assert caught.value.status == 400 and "TaskId" in caught.value.reason


def nested(levels: int) -> dict[str, Any]:
    """A notification whose containers nest ``levels`` deep, itself the first level; the deepest one is empty."""
    value: Any = []
    for _ in range(levels - 2):
        value = [value]
    return {"NotificationType": "ProcessEof", "TaskId": "deep", "Timestamp": value}


def test_the_deepest_body_the_journal_can_write_passes_and_has_a_dedupe_key() -> None:
    body = nested(254)
    check_depth(body)
    assert len(dedupe_key(body)) == 64


@pytest.mark.parametrize("levels", [255, 300, 1024])
def test_a_body_deeper_than_the_journal_can_write_is_refused_before_it(levels: int) -> None:
    """Checked on the whole body: a deep Timestamp, which the dedupe key leaves out, is refused too."""
    with pytest.raises(Refused) as caught:
        check_depth(nested(levels))
    assert (caught.value.status, caught.value.code, caught.value.reason) == (
        400,
        "too_deep",
        "JSON nested deeper than 255 levels",
    )
