"""Reconciliation through the MPS API (``reconcile.py``), against a stand-in of the MPS API endpoint.

The real Tencent Cloud SDK signs and sends every request; the stand-in (``tests/support/
mps_api_standin.py``) checks the signature and answers as the API documents. What a test
recovers goes through the real intake, journal and projector into a real database.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from mps_callback.config import Settings
from mps_callback.mps import EVENT_CONTAINERS
from mps_callback.reconcile import (
    DETAIL_FIELDS,
    LIVE_TASK_TYPES,
    BadSince,
    Summary,
    notification_of,
    run,
    since_instant,
)
from mps_callback.store.engine import create_engine
from mps_callback.store.tables import notifications, tasks
from mps_callback.verify.shape import recognise
from mps_callback.verify.signature import sign
from tests.support.background import background_process, jobs_started
from tests.support.bodies import load_fixture
from tests.support.checks import assert_no_secret, wait_until
from tests.support.cli import cli, one_line_error
from tests.support.db import query
from tests.support.db import run as run_async
from tests.support.mps_api_standin import MpsApiStandIn, mps_api_standin
from tests.support.service import InProcessService

SECRET_ID = "AKIDreconcileSTANDINsecretid01"
SECRET_KEY = "reconcile-standin-secret-key-value-01"
NOTIFY_KEY = "notify-key-reconcile"
CREDENTIALS = {"TENCENTCLOUD_SECRET_ID": SECRET_ID, "TENCENTCLOUD_SECRET_KEY": SECRET_KEY}


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[MpsApiStandIn]:
    """The stand-in, with the credentials in this process's environment (where the SDK reads them)."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    with mps_api_standin(SECRET_ID, SECRET_KEY) as running:
        yield running


def workflow_task(task_id: str, status: str = "FINISH") -> dict[str, Any]:
    """A DescribeTaskDetail answer for a transcode WorkflowTask: MPS's documented example's task."""
    task = copy.deepcopy(load_fixture("examples/doc-vod-WorkflowTask-transcode.json")["WorkflowTaskEvent"])
    task["TaskId"], task["Status"] = task_id, status
    if status != "FINISH":
        for result in task["MediaProcessResultSet"]:
            for subtask in result.values():
                if isinstance(subtask, dict):
                    subtask.update(Status="PROCESSING", Output=None)
    return {
        "TaskType": "WorkflowTask",
        "Status": status,
        "CreateTime": "2026-11-24T10:00:00Z",
        "BeginProcessTime": "2026-11-24T10:00:01Z",
        "FinishTime": "2026-11-24T10:01:00Z" if status == "FINISH" else "0000-00-00T00:00:00Z",
        "WorkflowTask": task,
        "TaskNotifyConfig": {"NotifyType": "URL", "NotifyUrl": "https://example.com/cb", "NotifyKey": "k"},
        "TasksPriority": 0,
        "SessionId": f"session-{task_id}",
        "SessionContext": "from-the-api",
        "ExtInfo": "",
    }


def settings_for(url: str, standin: MpsApiStandIn, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        database_url=url,
        api_endpoint=standin.url,
        notify_keys=NOTIFY_KEY,
        spool_dir=str(tmp_path / "spool"),
    )


def reconcile_once(url: str, standin: MpsApiStandIn, tmp_path: Path, since: str = "72h") -> Summary:
    async def go() -> Summary:
        engine = create_engine(url)
        try:
            return await run(engine, settings_for(url, standin, tmp_path), since_instant(since))
        finally:
            await engine.dispose()

    return run_async(go())


def details_fetched(standin: MpsApiStandIn) -> list[str]:
    return [params["TaskId"] for params in standin.called("DescribeTaskDetail")]


def journal(url: str) -> list[Any]:
    return query(url, sa.select(notifications).order_by(notifications.c.id))


# ---------------------------------------------------------------- recovery, end to end


@pytest.mark.process
def test_a_task_no_notification_brought_is_recovered_and_shown(
    database_url: str, tmp_path: Path, standin: MpsApiStandIn
):
    standin.put(workflow_task("2400001-WorkflowTask-recovered"))
    environment = {
        "MPS_DATABASE_URL": database_url,
        "MPS_API_ENDPOINT": standin.url,
        "MPS_NOTIFY_KEYS": NOTIFY_KEY,  # no Sign on a fetched body: accepted all the same
        "MPS_SPOOL_DIR": str(tmp_path / "spool"),
        "MPS_LOG_LEVEL": "DEBUG",
        **CREDENTIALS,
    }
    result = cli("reconcile", "--since", "72h", env=environment)
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout.splitlines()[-1]) | {} == {
        "listed": 1,
        "fetched": 1,
        "accepted": 1,
        "duplicate": 0,
        "spooled": 0,
        "skipped": 0,
        "failed": 0,
    }
    (row,) = journal(database_url)
    assert (row.channel, row.wrapper, row.signature, row.confirmation) == ("api", "api-response", "api", "confirmed")
    assert row.message_id == row.delivery["headers"]["message_id"] != ""
    assert row.event_type == "WorkflowTask" and row.task_id == "2400001-WorkflowTask-recovered"
    assert "TaskNotifyConfig" not in row.body and row.body["SessionContext"] == "from-the-api"

    with InProcessService(database_url, tmp_path, notify_keys=NOTIFY_KEY) as service:
        assert service.project() == 1
        task = service.get("/v1/tasks/2400001-WorkflowTask-recovered").json()
        assert task["status"] == "FINISH" and task["session_id"] == "session-2400001-WorkflowTask-recovered"
        assert "/dasda/dianping2_transcode_10.mp4" in [output["path"] for output in task["outputs"]]
        page = service.get("/ui/tasks/2400001-WorkflowTask-recovered", headers={"accept": "text/html"}).text
        assert "recovered through the MPS API" in page
        listing = service.get("/ui/").text
        assert 'class="recovered"' in listing
        logs = service.logs()
    assert_no_secret(
        {"stdout": result.stdout, "stderr": result.stderr, "journal": journal(database_url), "logs": logs},
        CREDENTIALS,
    )
    assert all("authorization" in headers for headers in standin.headers_seen)  # signed, with our key


def test_a_task_final_in_the_tasks_table_is_not_fetched_again_and_a_processing_one_is_refreshed(
    database_url: str, tmp_path: Path, standin: MpsApiStandIn
):
    standin.put(workflow_task("t-final"))
    standin.put(workflow_task("t-running", "PROCESSING"))
    first = reconcile_once(database_url, standin, tmp_path)
    assert (first.listed, first.accepted) == (2, 2)
    with InProcessService(database_url, tmp_path, notify_keys=NOTIFY_KEY) as service:
        assert service.project() == 2
        assert service.get("/v1/tasks/t-running").json()["status"] == "PROCESSING"

        standin.calls.clear()
        again = reconcile_once(database_url, standin, tmp_path)
        assert details_fetched(standin) == ["t-running"]  # t-final is FINISH in the tasks table
        assert (again.fetched, again.duplicate, again.accepted) == (1, 1, 0)  # the same state: a duplicate

        standin.put(workflow_task("t-running", "FINISH"))
        standin.calls.clear()
        finished = reconcile_once(database_url, standin, tmp_path)
        assert details_fetched(standin) == ["t-running"] and finished.accepted == 1
        assert service.project() == 1
        task = service.get("/v1/tasks/t-running").json()
        assert task["status"] == "FINISH" and task["notification_count"] == 2


def test_describe_tasks_is_paged_with_its_scroll_token(database_url: str, tmp_path: Path, standin: MpsApiStandIn):
    standin.page_size = 2
    for number in range(5):
        standin.put(workflow_task(f"t-paged-{number}"))
    summary = reconcile_once(database_url, standin, tmp_path)
    finish_pages = [params for params in standin.called("DescribeTasks") if params["Status"] == "FINISH"]
    assert [params.get("ScrollToken") for params in finish_pages] == [None, "2", "4"]
    assert all(params["Limit"] == 100 for params in finish_pages)
    assert summary.listed == 5 and sorted(details_fetched(standin)) == [f"t-paged-{n}" for n in range(5)]
    assert len(journal(database_url)) == 5


def test_a_scroll_token_handed_back_again_ends_the_paging(database_url: str, tmp_path: Path, standin: MpsApiStandIn):
    """An API answering every page with the same ScrollToken must not keep a run fetching the same tasks for ever."""
    standin.put(workflow_task("t-looping"))
    listed = standin.describe_tasks
    standin.describe_tasks = lambda params: {  # type: ignore[method-assign]
        **listed({name: value for name, value in params.items() if name != "ScrollToken"}),
        "ScrollToken": "the-same",
    }
    summary = reconcile_once(database_url, standin, tmp_path)
    finish_pages = [params for params in standin.called("DescribeTasks") if params["Status"] == "FINISH"]
    assert [params.get("ScrollToken") for params in finish_pages] == [None, "the-same"]
    assert summary.accepted == 1 and len(journal(database_url)) == 1


def test_throttled_calls_are_retried(database_url: str, tmp_path: Path, standin: MpsApiStandIn):
    standin.put(workflow_task("t-throttled"))
    standin.throttle = {"DescribeTasks": 1, "DescribeTaskDetail": 2}
    summary = reconcile_once(database_url, standin, tmp_path)
    assert summary.accepted == 1 and not summary.failed
    assert details_fetched(standin) == ["t-throttled"] * 3  # twice refused with RequestLimitExceeded, then answered
    assert [params["Status"] for params in standin.called("DescribeTasks")] == ["FINISH", "FINISH", "PROCESSING"]


def test_a_task_type_this_module_does_not_know_is_journaled_as_received(
    database_url: str, tmp_path: Path, standin: MpsApiStandIn
):
    standin.put({"TaskType": "HologramTask", "Status": "FINISH", "HologramTask": {"TaskId": "t-new-type", "X": 1}})
    assert reconcile_once(database_url, standin, tmp_path).accepted == 1
    (row,) = journal(database_url)
    assert (row.event_type, row.task_id) == ("HologramTask", "t-new-type")
    assert row.body["HologramTaskEvent"] == {"TaskId": "t-new-type", "X": 1}


def test_a_task_mps_no_longer_describes_is_counted_as_not_recovered(
    database_url: str, tmp_path: Path, standin: MpsApiStandIn
):
    standin.put(workflow_task("t-gone"))
    original = standin.describe_task_detail
    standin.describe_task_detail = lambda params: {"Error": {"Code": "ResourceNotFound", "Message": "gone"}}  # type: ignore[method-assign]
    summary = reconcile_once(database_url, standin, tmp_path)
    standin.describe_task_detail = original  # type: ignore[method-assign]
    assert summary.failed == ["t-gone"] and journal(database_url) == []


# ---------------------------------------------------------------- the trusted channel stays narrow


def test_a_sender_cannot_pass_as_the_api(database_url: str, tmp_path: Path):
    """An unsigned body in the api-response wrapper posted to the callback is refused: only
    reconcile's own Intake skips the Sign, whatever a body looks like."""
    body = {"Response": {"EventType": "WorkflowTask", "WorkflowTaskEvent": {"TaskId": "t-forged"}, "RequestId": "r"}}
    with InProcessService(database_url, tmp_path, notify_keys=NOTIFY_KEY) as service:
        response = service.post(body)
    assert response.status_code == 401
    assert journal(database_url) == []


def test_a_signed_callback_and_a_recovered_copy_keep_their_own_marks(
    database_url: str, tmp_path: Path, standin: MpsApiStandIn
):
    """A real callback carries fields DescribeTaskDetail does not (its null sibling events, ``ExtInfo``, as the
    captured body shows), so it and the recovered copy are two journal rows, each with its own marks, and one
    task with one state."""
    detail = workflow_task("t-both")
    captured = load_fixture("captured/terraform-WorkflowTask.json")
    siblings = {key: value for key, value in captured.items() if key not in ("WorkflowTaskEvent", "Timestamp", "Sign")}
    timestamp = int(datetime.now(UTC).timestamp()) + 600
    signed = {**siblings, **notification_of(detail), "Timestamp": timestamp, "Sign": sign(timestamp, NOTIFY_KEY)}
    with InProcessService(database_url, tmp_path, notify_keys=NOTIFY_KEY) as service:
        assert service.post(signed).status_code == 200
        standin.put(detail)
        summary = reconcile_once(database_url, standin, tmp_path)
        service.project()
        task = service.get("/v1/tasks/t-both").json()
    assert summary.accepted == 1 and not summary.duplicate
    assert [(row.channel, row.signature) for row in journal(database_url)] == [("http", "verified"), ("api", "api")]
    assert task["status"] == "FINISH" and task["notification_count"] == 2


# ---------------------------------------------------------------- the mapping


@pytest.mark.parametrize("task_type", sorted(set(DETAIL_FIELDS) - LIVE_TASK_TYPES))
def test_every_file_task_type_becomes_the_notification_shape(task_type: str):
    detail = {
        "TaskType": task_type,
        "Status": "FINISH",
        DETAIL_FIELDS[task_type]: {"TaskId": f"id-{task_type}", "Status": "FINISH"},
        "SessionId": "s",
        "TaskNotifyConfig": {"NotifyKey": "not-kept"},
        "RequestId": "r",
    }
    body = notification_of(detail)
    container = EVENT_CONTAINERS.get(task_type, f"{task_type}Event")
    assert body == {"EventType": task_type, container: detail[DETAIL_FIELDS[task_type]], "SessionId": "s"}
    assert recognise(body).task_id == f"id-{task_type}"


@pytest.mark.parametrize("task_type", sorted(LIVE_TASK_TYPES))
def test_a_finished_live_task_becomes_its_process_eof_and_a_running_one_nothing(task_type: str):
    task = {"TaskId": "live-1", "Status": "FINISH", "ErrCode": 4002, "Message": "data timeout", "Url": "rtmp://x"}
    detail = {"TaskType": task_type, "Status": "FINISH", task_type: task, "SessionContext": "c", "RequestId": "r"}
    assert notification_of(detail) == {
        "NotificationType": "ProcessEof",
        "TaskId": "live-1",
        "ProcessEofInfo": {"ErrCode": 4002, "Message": "data timeout"},
        "SessionContext": "c",
    }
    assert notification_of({**detail, task_type: {**task, "Status": "PROCESSING"}}) is None


def test_a_live_task_is_recovered_once_finished_and_left_alone_while_it_runs(
    database_url: str, tmp_path: Path, standin: MpsApiStandIn
):
    running = {"TaskId": "live-running", "Status": "PROCESSING", "ErrCode": 0, "Message": "", "Url": "rtmp://a"}
    ended = {"TaskId": "live-ended", "Status": "FINISH", "ErrCode": 0, "Message": "", "Url": "rtmp://b"}
    for task in (running, ended):
        standin.put({"TaskType": "LiveStreamProcessTask", "Status": task["Status"], "LiveStreamProcessTask": task})
    summary = reconcile_once(database_url, standin, tmp_path)
    assert (summary.accepted, summary.skipped) == (1, 1)
    assert details_fetched(standin) == ["live-ended"]  # the running one is not even fetched
    (row,) = journal(database_url)
    assert (row.kind, row.notification_type, row.task_id) == ("live", "ProcessEof", "live-ended")
    with InProcessService(database_url, tmp_path) as service:
        assert service.project() == 1
        task = service.get("/v1/tasks/live-ended").json()
        assert (task["kind"], task["status"]) == ("live", "FINISH")


def test_an_answer_without_its_task_object_is_kept_whole():
    detail = {"TaskType": "WorkflowTask", "Status": "FINISH", "Odd": {"TaskId": "t"}, "RequestId": "r"}
    assert notification_of(detail) == {
        "EventType": "WorkflowTask",
        "TaskType": "WorkflowTask",
        "Status": "FINISH",
        "Odd": {"TaskId": "t"},
    }


# ---------------------------------------------------------------- --since and configuration


NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", NOW - timedelta(minutes=30)),
        ("72h", NOW - timedelta(hours=72)),
        ("7d", NOW - timedelta(days=7)),
        ("2026-11-23T08:00:00+08:00", datetime(2026, 11, 23, 0, 0, tzinfo=UTC)),
        ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),
    ],
)
def test_since_takes_durations_and_instants(text: str, expected: datetime):
    assert since_instant(text, NOW) == expected


@pytest.mark.parametrize(
    "text",
    ["8d", "169h", "-1h", "1h; drop table tasks", "9" * 100 + "h", "2026-12-01", "9999-12-31T23:59:59-01:00", ""],
)
def test_since_refuses_what_describe_tasks_cannot_answer(text: str):
    with pytest.raises(BadSince):
        since_instant(text, NOW)


@pytest.mark.process
@pytest.mark.parametrize("text", ["8d", "abc", "2000-01-01", "\x1b[31mred"])
def test_a_hostile_since_is_one_line_and_no_api_call(text: str, tmp_path: Path, standin: MpsApiStandIn):
    environment = {"MPS_DATABASE_URL": f"sqlite:///{tmp_path / 'j.db'}", "MPS_API_ENDPOINT": standin.url, **CREDENTIALS}
    line = one_line_error(cli("reconcile", "--since", text, env=environment), 2)
    assert line.startswith("bad --since")
    assert standin.calls == []


@pytest.mark.process
def test_reconcile_without_credentials_or_with_wrong_ones_says_so_in_one_line(
    tmp_path: Path, standin: MpsApiStandIn, monkeypatch: pytest.MonkeyPatch
):
    for name in CREDENTIALS:
        monkeypatch.delenv(name)
    environment = {"MPS_DATABASE_URL": f"sqlite:///{tmp_path / 'j.db'}", "MPS_API_ENDPOINT": standin.url}
    cli("db", "upgrade", env=environment)
    line = one_line_error(cli("reconcile", env=environment), 2)
    assert "TENCENTCLOUD_SECRET_ID" in line
    wrong = {**environment, "TENCENTCLOUD_SECRET_ID": SECRET_ID, "TENCENTCLOUD_SECRET_KEY": "wrong-key-value-123"}
    result = cli("reconcile", env=wrong)
    assert "AuthFailure.SignatureFailure" in one_line_error(result, 1)
    assert_no_secret({"stdout": result.stdout, "stderr": result.stderr}, {"key": "wrong-key-value-123"})


# ---------------------------------------------------------------- inside serve's background process


@pytest.mark.process
def test_the_background_process_reconciles_every_interval(database_url: str, tmp_path: Path, standin: MpsApiStandIn):
    standin.put(workflow_task("t-periodic"))
    log = tmp_path / "background.log"
    with background_process(
        database_url,
        log,
        reconcile_interval_seconds="60",  # the shortest allowed; the first run is at start
        api_endpoint=standin.url,
        notify_keys=NOTIFY_KEY,
        spool_dir=str(tmp_path / "spool"),
    ):
        wait_until(lambda: query(database_url, sa.select(tasks.c.status)) == [("FINISH",)], 30, "the recovered task")
    assert "reconciliation" in jobs_started(log)
    assert details_fetched(standin) == ["t-periodic"]
    assert len(journal(database_url)) == 1
    assert_no_secret({"log": log.read_text(), "journal": journal(database_url)}, CREDENTIALS)


@pytest.mark.process
def test_serve_with_an_interval_and_no_credentials_stops_at_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name in CREDENTIALS:
        monkeypatch.delenv(name, raising=False)
    environment = {"MPS_DATABASE_URL": f"sqlite:///{tmp_path / 'j.db'}", "MPS_RECONCILE_INTERVAL_SECONDS": "300"}
    line = one_line_error(cli("serve", "--port", "0", env=environment), 2)
    assert line == "bad configuration: reconciliation needs TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY"


@pytest.mark.process
@pytest.mark.parametrize("interval", ["-1", "0.001", "59", "86401", "soon"])
def test_serve_with_an_interval_out_of_range_stops_at_start(tmp_path: Path, interval: str):
    """A negative interval is a mistake, not "off"; one past a day would leave gaps in the 72 h window."""
    environment = {"MPS_DATABASE_URL": f"sqlite:///{tmp_path / 'j.db'}", "MPS_RECONCILE_INTERVAL_SECONDS": interval}
    line = one_line_error(cli("serve", "--port", "0", env=environment), 2)
    assert line.startswith("bad configuration: MPS_RECONCILE_INTERVAL_SECONDS:")
