"""Failure semantics: a SUCCESS that carries an error is a failure, in the tables and in the view.

MPS reports some failed steps with ``Status: SUCCESS`` and an ``ErrCode`` or ``ErrCodeExt``;
the subtask and its task count as failed. The compatibility view ``mps_task_result`` shows a
finished failed task as ``FAIL`` (a running one stays ``PROCESSING``), on every backend.
"""

from __future__ import annotations

import copy

import pytest
import sqlalchemy as sa
from alembic import command

from mps_callback.project.model import subtask_failed
from mps_callback.project.parse import parse
from mps_callback.store.migrate import alembic_config, upgrade
from mps_callback.store.tables import tasks
from tests.support.bodies import load_fixture
from tests.support.db import query
from tests.support.projection import processing_version, run_ingest
from tests.support.schema import OLD_ROWS, view_rows

TRANSCODE = load_fixture("examples/doc-vod-WorkflowTask-transcode.json")


def workflow(task_id: str, **transcode_state: object) -> dict:
    """A finished WorkflowTask whose one TranscodeTask has ``transcode_state`` (Status, ErrCode, ErrCodeExt)."""
    state = {"Status": "SUCCESS", "ErrCode": 0, "ErrCodeExt": "", "Message": "SUCCESS", **transcode_state}
    return {
        "EventType": "WorkflowTask",
        "WorkflowTaskEvent": {
            "TaskId": task_id,
            "Status": "FINISH",
            "ErrCode": 0,
            "Message": "",
            "MediaProcessResultSet": [
                {
                    "Type": "Transcode",
                    "TranscodeTask": {**state, "Input": {"Definition": 10}, "Output": {"Path": "/out/a.mp4"}},
                }
            ],
        },
    }


@pytest.mark.parametrize(
    ("status", "err_code", "err_code_ext", "failed"),
    [
        ("SUCCESS", 0, "", False),
        ("SUCCESS", None, None, False),
        ("SUCCESS", 0, "SUCCESS", False),
        ("SUCCESS", 30010, "", True),
        ("SUCCESS", 0, "FailedOperation.MediaDecode", True),
        ("FAIL", 0, "", True),
        ("PROCESSING", 30010, "", False),  # not over yet
    ],
)
def test_a_success_with_an_error_is_a_failure(status, err_code, err_code_ext, failed):
    assert subtask_failed(status, err_code, err_code_ext) is failed
    projection = parse(workflow("t-rule", Status=status, ErrCode=err_code, ErrCodeExt=err_code_ext))
    [subtask] = projection.subtasks
    assert (subtask.status, subtask.failed, projection.failed) == (status, failed, failed)  # MPS's Status kept as sent


def view_status(url: str, task_id: str) -> str:
    return query(url, sa.text("SELECT status FROM mps_task_result WHERE task_id = :t").bindparams(t=task_id))[0][0]


def failed(url: str, task_id: str) -> bool:
    return bool(query(url, sa.select(tasks.c.failed).where(tasks.c.task_id == task_id))[0][0])


def test_the_doc_example_with_a_failed_animated_graphic_shows_fail_in_the_view(database_url: str):
    run_ingest(database_url, [TRANSCODE])
    task_id = TRANSCODE["WorkflowTaskEvent"]["TaskId"]
    assert failed(database_url, task_id) and view_status(database_url, task_id) == "FAIL"


def test_a_success_with_err_code_ext_fails_its_task_and_stays_failed(database_url: str):
    body = workflow("t-ext", ErrCodeExt="FailedOperation.MediaDecode")
    ok = workflow("t-ok", ErrCodeExt="SUCCESS")
    run_ingest(database_url, [body, ok])
    assert failed(database_url, "t-ext") and view_status(database_url, "t-ext") == "FAIL"
    assert not failed(database_url, "t-ok") and view_status(database_url, "t-ok") == "FINISH"
    # A later, stale notification that replaces nothing: the failure read back from the table still counts.
    run_ingest(database_url, [processing_version(body)])
    assert failed(database_url, "t-ext") and view_status(database_url, "t-ext") == "FAIL"


def test_a_running_task_with_a_failed_subtask_is_still_processing_in_the_view(database_url: str):
    running = copy.deepcopy(workflow("t-run", ErrCode=30010))
    running["WorkflowTaskEvent"]["Status"] = "PROCESSING"
    run_ingest(database_url, [running])
    assert failed(database_url, "t-run") and view_status(database_url, "t-run") == "PROCESSING"


def failed_eof(task_id: str) -> dict:
    return {
        "NotificationType": "ProcessEof",
        "TaskId": task_id,
        "ProcessEofInfo": {"ErrCode": 4002, "Message": "data timeout"},
    }


def test_beside_the_old_scripts_rows_a_failed_task_shows_fail_and_theirs_stay(old_script_database: str):
    """The view's legacy union (revision 0005 over 0002's): old rows as they were, ours with FAIL."""
    url = old_script_database
    upgrade(url)
    run_ingest(url, [failed_eof("shared-task"), failed_eof("new-task")])
    rows = view_rows(url)
    assert rows["old-task-1"] == OLD_ROWS[0] and rows["old-task-2"] == OLD_ROWS[1]
    assert rows["shared-task"][1] == "FAIL" and rows["new-task"][1] == "FAIL"


def test_downgrading_0005_shows_finish_again(database_url: str):
    run_ingest(database_url, [TRANSCODE])
    task_id = TRANSCODE["WorkflowTaskEvent"]["TaskId"]
    command.downgrade(alembic_config(database_url), "0004")
    assert view_status(database_url, task_id) == "FINISH"
    upgrade(database_url)
    assert view_status(database_url, task_id) == "FAIL"
