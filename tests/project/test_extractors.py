"""The extractor modules are the one place a result group is declared, and they agree with the fixtures.

Every routing table ``parse`` and the API read is derived from ``extractors.GROUPS`` (one
module per group). These tests check that each declared route leads where it says, that
every declared family has a fixture body that reaches it, that every fixture is read by a
known family (or is one of the few listed exceptions), and, the point of the design, that a
new group is one new module plus one entry in the tuple.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY

from mps_callback.api import subtitles
from mps_callback.mps import EVENT_CONTAINERS, LIVE_NOTIFICATION_TYPES
from mps_callback.project import extractors, family, parse
from mps_callback.project.extractors import GROUPS, ROUTES, Routes, live, routes
from mps_callback.project.family import Family, Group
from mps_callback.project.model import TaskProjection
from tests.support.bodies import FIXTURES

#: Fixtures that project no subtask of a known family, and what they are for instead.
NOT_RESULTS = {
    "captured/terraform-WorkflowTask.json": "a real capture with no result sets (tests/project/test_parse.py)",
    "vod-events/FileDeleted.json": "a Tencent VOD event, no MPS task (tests/test_vod_events.py)",
    "vod-events/NewFileUpload.json": "a Tencent VOD event, no MPS task (tests/test_vod_events.py)",
    "vod-events/ProcedureStateChanged.json": "a Tencent VOD event, no MPS task (tests/test_vod_events.py)",
}
FIXTURE_FILES = sorted(FIXTURES.rglob("*.json"))


def _name(path: Path) -> str:
    return path.relative_to(FIXTURES).as_posix()


def _projection(body: dict[str, Any]) -> TaskProjection:
    projection = parse.parse(body)
    assert projection is not None, "not an MPS task"
    return projection


def _lookups(body: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[tuple[str, str]]]:
    """The projection of ``body`` and every (group, family) the reader looked up to read it."""
    seen: list[tuple[str, str]] = []
    lookup = parse.Reader.family

    def recording(reader: parse.Reader, group: str, key: str) -> Family:
        seen.append((group, key))
        return lookup(reader, group, key)

    with monkeypatch.context() as patch:
        patch.setattr(parse.Reader, "family", recording)
        projection = parse.parse(body)
    return projection, seen


def _words(node: Any) -> Iterator[str]:
    """Every key in a fixture body, and the EventType/NotificationType it routes by."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            if key in ("EventType", "NotificationType") and isinstance(value, str):
                yield value
            yield from _words(value)
    elif isinstance(node, list):
        for item in node:
            yield from _words(item)


# ---------------------------------------------------------------- every route leads to its group


def _result_set_body(key: str) -> dict[str, Any]:
    return {"EventType": "WorkflowTask", "WorkflowTaskEvent": {"TaskId": "t", key: {"Status": "SUCCESS"}}}


def _activity_body(key: str) -> dict[str, Any]:
    activity = {"ActivityType": "x", "ActivityResItem": {key: {"Status": "SUCCESS"}}}
    return {"EventType": "ScheduleTask", "ScheduleTaskEvent": {"TaskId": "t", "ActivityResultSet": [activity]}}


def _live_body(notification_type: str) -> dict[str, Any]:
    return {"NotificationType": notification_type, "TaskId": "t", f"{notification_type}Info": {"Answer": 42}}


def _event_fixture(event_type: str) -> dict[str, Any]:
    """A fixture body of ``event_type``: these containers each have a reader of their own shape."""
    path = FIXTURES / "vod" / f"{event_type}.json"
    body: dict[str, Any] = orjson.loads(path.read_bytes())
    return body


def check_routes(table: Routes, group_modules: tuple[types.ModuleType, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every route a group declares leads ``parse`` to that group, and every group has one."""
    monkeypatch.setattr(parse, "ROUTES", table)
    for module in group_modules:
        group: Group = module.GROUP
        bodies = (
            [_result_set_body(key) for key in group.result_sets]
            + [_activity_body(key) for key in group.activities]
            + [_event_fixture(event_type) for event_type in group.event_types]
            + [_live_body(notification_type) for notification_type in group.live]
        )
        assert bodies, f"group {group.name} is reachable from no EventType, activity or NotificationType"
        for body in bodies:
            projection, seen = _lookups(body, monkeypatch)
            assert projection.subtasks, body
            assert {looked_up_group for looked_up_group, _ in seen} == {group.name}, body


def test_every_group_is_reachable_from_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    check_routes(ROUTES, GROUPS, monkeypatch)


def test_event_types_and_live_types_have_readers() -> None:
    assert set(ROUTES.event_types) <= set(parse.EVENT_READERS)
    assert set(ROUTES.event_types) <= set(EVENT_CONTAINERS)
    assert set(ROUTES.live) == set(LIVE_NOTIFICATION_TYPES)  # the types verify/shape recognises


def test_process_eof_is_a_reader_table_entry_that_ends_the_task() -> None:
    assert {type_ for type_, reader in ROUTES.live.items() if reader is not live.read_results} == {"ProcessEof"}
    eof = _projection(_live_body("ProcessEof"))
    assert (eof.status, eof.subtasks[0].mode) == ("FINISH", "snapshot")
    result = _projection(_live_body("LiveRecordResult"))
    assert (result.status, result.subtasks[0].mode) == ("PROCESSING", "append")


# ---------------------------------------------------------------- fixtures and families agree


def _projections(monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[Any, list[tuple[str, str]]]]:
    return {_name(path): _lookups(orjson.loads(path.read_bytes()), monkeypatch) for path in FIXTURE_FILES}


def test_every_family_has_a_fixture_that_reaches_it(monkeypatch: pytest.MonkeyPatch) -> None:
    words = {word for path in FIXTURE_FILES for word in _words(orjson.loads(path.read_bytes()))}
    reached = {pair for _, seen in _projections(monkeypatch).values() for pair in seen}
    declared = set(ROUTES.families)
    assert {key for _, key in declared} - words == set(), "families no fixture body contains"
    assert declared - reached == set(), "families no fixture is read with"


def test_every_fixture_is_read_by_known_families(monkeypatch: pytest.MonkeyPatch) -> None:
    unread = {}
    for name, (projection, seen) in _projections(monkeypatch).items():
        unknown = [pair for pair in seen if pair not in ROUTES.families]
        if projection is None or not projection.subtasks or unknown:
            unread[name] = unknown
    assert set(unread) == set(NOT_RESULTS), unread  # no fixture unread, no stale exception listed
    assert all(unknown == [] for unknown in unread.values())


def test_the_former_copies_are_derived_and_agree() -> None:
    assert (
        subtitles.FAMILY_PREFERENCE
        == ROUTES.subtitle_preference
        == ("AsrFullTextTask", "TransTextTask", "OcrFullTextTask")
    )
    assert extractors.FAMILIES is ROUTES.families
    for module in GROUPS:
        group: Group = module.GROUP
        assert {ROUTES.result_sets[key] for key in group.result_sets} <= {group.name}
        assert {ROUTES.activities[key] for key in group.activities} <= {group.name}
        for preferred in group.subtitle_preference:  # only families that yield subtitle lines
            assert "subtitle" in group.families[preferred].segments.values(), (group.name, preferred)
    assert ROUTES.result_sets["AiContentReviewResultSet"] == "AiReview"
    assert ROUTES.activities["TranscodeTask"] == "MediaProcess"


def test_a_name_two_groups_claim_is_refused() -> None:
    thief = types.ModuleType("thief")
    vars(thief).update(GROUP=Group(name="Thief", families={}, result_sets=("AiAnalysisResultSet",)))
    with pytest.raises(ValueError, match="AiAnalysisResultSet"):
        routes((*GROUPS, thief))


# ---------------------------------------------------------------- a new group is one module and one tuple entry


def _future_body() -> dict[str, Any]:
    moments = [
        {"StartTimeOffset": 1.0, "EndTimeOffset": 4.5, "Text": "moment 0"},
        {"StartTimeOffset": 11.0, "EndTimeOffset": 14.5, "Text": "moment 1"},
    ]
    task = {
        "Status": "SUCCESS",
        "ErrCode": 0,
        "Message": "SUCCESS",
        "Input": {"Definition": 7},
        "Output": {"MomentSet": moments, "Path": "/out/future.mp4"},
    }
    event = {"TaskId": "future-1", "Status": "FINISH", "AiFutureResultSet": [{"Type": "Future", "FutureTask": task}]}
    return {"EventType": "WorkflowTask", "WorkflowTaskEvent": event}


def _future_module() -> types.ModuleType:
    """What a developer writes for a group MPS ships later: ``extractors/ai_future.py``."""
    module = types.ModuleType("mps_callback.project.extractors.ai_future")
    families = {"FutureTask": Family(segments={"MomentSet": "moment"}, roles={"Path": ("main", 3)})}
    group = Group(name="AiFuture", families=families, result_sets=("AiFutureResultSet",))
    vars(module).update(FAMILIES=families, GROUP=group)
    return module


def test_a_new_group_is_one_module_and_one_tuple_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    [before] = _projection(_future_body()).subtasks  # unknown today: kept, but generically
    assert (before.group, before.family) == ("AiFutureResultSet", "FutureTask")
    assert [s.kind for s in before.segments] == ["FutureTask.MomentSet"] * 2

    extended = (*GROUPS, _future_module())  # the one tuple entry
    table = routes(extended)
    monkeypatch.setattr(parse, "ROUTES", table)

    [after] = _projection(_future_body()).subtasks
    assert (after.group, after.family, after.type, after.status) == ("AiFuture", "FutureTask", "Future", "SUCCESS")
    assert [(s.kind, s.start, s.end, s.text) for s in after.segments] == [
        ("moment", 1.0, 4.5, "moment 0"),
        ("moment", 11.0, 14.5, "moment 1"),
    ]
    assert [(o.path, o.role) for o in after.outputs] == [("/out/future.mp4", "main")]
    assert after.key == "AiFuture/FutureTask/7/1"
    check_routes(table, extended, monkeypatch)  # and the consistency check takes it as it is


# ---------------------------------------------------------------- unknown families are noticed


def _unknown_count(group: str, name: str) -> float:
    return REGISTRY.get_sample_value("mps_unknown_family_total", {"group": group, "family": name}) or 0.0


@pytest.fixture
def fresh_notices(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process has noticed nothing yet (other tests parse unknown families too)."""
    monkeypatch.setattr(family, "_noticed", set())


@pytest.mark.usefixtures("fresh_notices")
def test_an_unknown_family_is_counted_per_notification_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    body = _future_body()
    items = body["WorkflowTaskEvent"]["AiFutureResultSet"]
    items.append(items[0])  # two results of the same unknown family in one notification
    before = _unknown_count("AiFutureResultSet", "FutureTask")
    with caplog.at_level(logging.WARNING, logger="mps_callback.project.family"):
        parse.parse(body)
        parse.parse(body)
    assert _unknown_count("AiFutureResultSet", "FutureTask") - before == 2  # once per notification
    [record] = caplog.records  # once per name
    assert "'AiFutureResultSet'" in record.getMessage() and "'FutureTask'" in record.getMessage()
    assert "moment" not in caplog.text and "future-1" not in caplog.text  # names only, no body content


@pytest.mark.usefixtures("fresh_notices")
def test_an_unknown_notification_type_is_counted_under_live(caplog: pytest.LogCaptureFixture) -> None:
    before = _unknown_count("Live", "AiFutureResult")
    with caplog.at_level(logging.WARNING, logger="mps_callback.project.family"):
        [subtask] = _projection(_live_body("AiFutureResult")).subtasks
    assert (subtask.group, subtask.family, subtask.mode) == ("AiFutureResult", "AiFutureResult", "append")
    assert _unknown_count("Live", "AiFutureResult") - before == 1
    assert len(caplog.records) == 1


@pytest.mark.usefixtures("fresh_notices")
def test_unknown_names_from_a_hostile_body_cannot_mint_unbounded_series(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(family, "MAX_UNKNOWN_NAMES", 2)
    long_name = "X" * 500 + "Task"
    other_before = _unknown_count("other", "other")
    with caplog.at_level(logging.WARNING, logger="mps_callback.project.family"):
        for name in (long_name, "SecondTask", "ThirdTask", "FourthTask", long_name):
            family.notice_unknown("Hostile\nGroup", name)
    assert _unknown_count("Hostile\nGroup", "X" * 64) == 2  # clipped, and still the same series
    assert _unknown_count("Hostile\nGroup", "SecondTask") == 1
    assert _unknown_count("Hostile\nGroup", "ThirdTask") == 0
    assert _unknown_count("other", "other") - other_before == 2  # past the bound: one shared series
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 3 and "later ones are counted as other" in messages[-1]
    assert all("\n" not in message for message in messages)  # names are logged escaped
