"""Tencent VOD's own event notifications (NewFileUpload, ProcedureStateChanged, FileDeleted...).

They share the ``EventType`` key with MPS and may reach the same URL: they are kept in the
journal (answered 200, so VOD stops retrying) and marked projected with nothing to project,
never turned into MPS tasks that would sit in PROCESSING for ever.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from mps_callback.mps import EVENT_CONTAINERS, VOD_PRODUCT_EVENTS
from mps_callback.project.parse import parse
from mps_callback.verify.shape import recognise
from tests.support.bodies import FIXTURES, fixture_files, load_fixture
from tests.support.cli import cli
from tests.support.db import count, query
from tests.support.projection import run_ingest
from tests.support.service import InProcessService

VOD_EVENT_FIXTURES = fixture_files("vod-events")


def test_vod_event_names_never_shadow_an_mps_event_type():
    assert not VOD_PRODUCT_EVENTS & set(EVENT_CONTAINERS)
    assert {
        "NewFileUpload",
        "ProcedureStateChanged",
        "FileDeleted",
        "PullComplete",
        "EditMediaComplete",
        "WechatPublishComplete",
        "TranscodeComplete",
        "ReviewAudioVideoComplete",
    } <= VOD_PRODUCT_EVENTS


@pytest.mark.parametrize("path", VOD_EVENT_FIXTURES, ids=lambda p: p.stem)
def test_a_vod_event_is_recognised_but_is_no_mps_task(path: Path):
    shape = recognise(load_fixture(path))
    assert shape.kind == "vod" and shape.event_type == path.stem and not shape.is_mps_task
    assert parse(load_fixture(path)) is None


def test_mps_notifications_stay_mps_tasks():
    for path in fixture_files("vod") + fixture_files("live"):
        assert recognise(load_fixture(path)).is_mps_task, path


def test_vod_events_are_journaled_and_projected_to_no_task(database_url: str):
    mps = load_fixture("examples/doc-vod-WorkflowTask-transcode.json")
    run_ingest(database_url, [load_fixture(path) for path in VOD_EVENT_FIXTURES] + [mps])
    journal = query(database_url, "SELECT event_type, projected_at, projection_error FROM notifications ORDER BY id")
    assert [row[0] for row in journal] == [path.stem for path in VOD_EVENT_FIXTURES] + ["WorkflowTask"]
    assert all(row[1] is not None and row[2] is None for row in journal), journal
    assert [row[0] for row in query(database_url, "SELECT event_type FROM tasks")] == ["WorkflowTask"]
    assert query(database_url, "SELECT COUNT(*) FROM subtasks WHERE task_id LIKE '%procedurev2%'")[0][0] == 0


def test_a_new_file_upload_through_the_service(tmp_path: Path):
    with InProcessService(f"sqlite:///{tmp_path / 'j.db'}", tmp_path) as service:
        answer = service.post(load_fixture("vod-events/NewFileUpload.json"))
        assert answer.status_code == 200 and answer.json()["code"] == 0, answer.text
        assert service.project() == 1
    rows = query(service.database_url, "SELECT event_type, kind, projected_at FROM notifications")
    assert [(row[0], row[1]) for row in rows] == [("NewFileUpload", "vod")] and rows[0][2] is not None
    assert count(service.database_url, "tasks") == 0


@pytest.mark.process
def test_parse_says_a_vod_event_projects_nothing():
    result = cli("parse", str(FIXTURES / "vod-events/NewFileUpload.json"))
    assert result.returncode == 0 and orjson.loads(result.stdout) is None
    assert "NewFileUpload" in result.stderr and "not an MPS task" in result.stderr
