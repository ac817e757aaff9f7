"""A projection failure stays with its notification; a forged or replayed body cannot pin a
task's state; a backlog of huge bodies stays bounded in memory. Real databases throughout."""

from __future__ import annotations

import asyncio
import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from mps_callback.project.projector import DatabaseAway, Projector
from mps_callback.store.engine import create_engine
from mps_callback.store.tables import notifications, subtasks, tasks
from tests.support.bodies import fixture_files, load_fixture
from tests.support.cli import cli
from tests.support.db import allow_inserts, execute, query, refuse_inserts
from tests.support.projection import run_ingest
from tests.support.proxy import CuttableProxy
from tests.support.service import InProcessService


def project(url: str, **options: object) -> int:
    async def go() -> int:
        engine = create_engine(url)
        try:
            return await Projector(engine, **options).drain()  # type: ignore[arg-type]
        finally:
            await engine.dispose()

    return asyncio.run(go())


def eof(task_id: str) -> dict:
    return {"NotificationType": "ProcessEof", "TaskId": task_id, "ProcessEofInfo": {"ErrCode": 0}}


def journal_row(url: str, task_id: str) -> sa.Row:
    [row] = query(url, sa.select(notifications).where(notifications.c.task_id == task_id))
    return row


def test_a_failing_notification_is_retried_alone_then_parked_and_never_blocks_the_others(database_url: str):
    refuse_inserts(database_url, "poison", table="tasks")
    run_ingest(database_url, [eof("healthy-1"), eof("poison"), eof("healthy-2")], project=False)
    for _ in range(3):  # three attempts, the back-off skipped by hand
        project(database_url, max_attempts=3)
        execute(database_url, "UPDATE notifications SET next_attempt_at = NULL WHERE projected_at IS NULL")
    assert {row.task_id for row in query(database_url, sa.select(tasks.c.task_id))} == {"healthy-1", "healthy-2"}
    poisoned = journal_row(database_url, "poison")
    assert poisoned.projection_attempts == 3 and poisoned.projection_failed_at is not None
    assert "refused by test" in poisoned.projection_error
    assert project(database_url, max_attempts=3) == 0  # parked: no longer tried
    allow_inserts(database_url, table="tasks")
    result = cli("reproject", "--failed", env={"MPS_DATABASE_URL": database_url})
    assert result.returncode == 0 and "reprojected 1 notifications" in result.stdout, result.stderr
    assert journal_row(database_url, "poison").projected_at is not None
    assert journal_row(database_url, "poison").projection_failed_at is None


def test_a_parked_notification_shows_in_the_api_and_readiness(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'j.db'}"
    from mps_callback.store.migrate import upgrade

    upgrade(url)
    refuse_inserts(url, "poison", table="tasks")
    run_ingest(url, [eof("poison")], project=False)
    for _ in range(6):  # the default number of attempts
        project(url)
        execute(url, "UPDATE notifications SET next_attempt_at = NULL WHERE projected_at IS NULL")
    with InProcessService(url, tmp_path) as service:
        notification_id = journal_row(url, "poison").id
        detail = service.get(f"/v1/notifications/{notification_id}").json()
        assert detail["projection_failed_at"] and detail["projection_attempts"] == 6
        assert "refused by test" in detail["projection_error"]
        readiness = service.get("/readyz").json()
        assert readiness["status"] == "degraded" and readiness["projection"]["failed"] == 1
        assert any("reproject --failed" in problem for problem in readiness["problems"])
        assert "mps_projections_failed 1.0" in service.get("/metrics").text


def test_a_database_outage_counts_against_no_notification(tmp_path: Path):
    from tests.support.db import migrated

    for url in migrated("postgres", tmp_path):
        run_ingest(url, [eof(f"waiting-{i}") for i in range(3)], project=False)
        target = make_url(url)
        proxy = CuttableProxy(target.host or "127.0.0.1", target.port or 5432)
        try:
            proxy.cut()
            through = target.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)

            async def once(through: str) -> None:
                engine = create_engine(through)
                try:
                    await Projector(engine).run_once()
                finally:
                    await engine.dispose()

            try:
                asyncio.run(once(through))
                raise AssertionError("run_once must raise while the database is away")
            except (DatabaseAway, OSError, sa.exc.DBAPIError):
                pass
        finally:
            proxy.close()
        rows = query(url, sa.select(notifications.c.projection_attempts, notifications.c.projection_error))
        assert all(row.projection_attempts == 0 and row.projection_error is None for row in rows)
        assert project(url) == 3


# ---------------------------------------------------------------- forged and replayed bodies


def _finish(task_id: str, **changes: object) -> dict:
    body = load_fixture("vod/WorkflowTask-MediaProcess-TranscodeTask.json")
    body["WorkflowTaskEvent"]["TaskId"] = task_id
    body.update(changes)
    return body


def test_a_forged_progress_cannot_outrank_a_real_result(database_url: str):
    real = _finish("forged-progress")
    forged = copy.deepcopy(real)
    forged["WorkflowTaskEvent"]["Status"] = "PROCESSING"
    for result in forged["WorkflowTaskEvent"]["MediaProcessResultSet"]:
        for task in result.values():
            if isinstance(task, dict) and "Status" in task:
                task.update(Status="PROCESSING", Progress=999, ErrCode=70000, Message="forged")
    run_ingest(database_url, [real, forged])
    assert (
        query(database_url, sa.select(tasks.c.status).where(tasks.c.task_id == "forged-progress"))[0].status == "FINISH"
    )
    rows = query(database_url, sa.select(subtasks.c.message, subtasks.c.progress, subtasks.c.err_code))
    assert rows and all(row.message != "forged" for row in rows)
    assert all(row.progress is None or 0 <= row.progress <= 100 for row in rows)


def test_a_replayed_body_cannot_win_a_tie_however_its_content_is_ground(database_url: str):
    """Both unsigned, both FINISH: the first received wins, whatever the later one's dedupe key."""
    real = _finish("tie-task")
    run_ingest(database_url, [real])
    for attempt in range(8):  # several forgeries, so some have a larger SHA-256 than the real one
        forged = _finish("tie-task", SessionContext=f"forged-{attempt}")
        forged["WorkflowTaskEvent"]["ErrCode"] = 70000
        forged["WorkflowTaskEvent"]["Message"] = "forged failure"
        run_ingest(database_url, [forged])
    [task] = query(database_url, sa.select(tasks).where(tasks.c.task_id == "tie-task"))
    assert task.message != "forged failure" and task.err_code in (0, None)
    assert not (task.session_context or "").startswith("forged")


def test_a_verified_notification_beats_an_earlier_unsigned_one(database_url: str):
    forged = _finish("strength-task")
    forged["WorkflowTaskEvent"]["Message"] = "unsigned forgery"
    run_ingest(database_url, [forged, _finish("strength-task")], project=False)
    execute(
        database_url,
        "UPDATE notifications SET signature = 'verified' WHERE id = (SELECT MAX(id) FROM notifications)"
        if make_url(database_url).get_backend_name() != "mysql"
        else "UPDATE notifications n JOIN (SELECT MAX(id) AS id FROM notifications) m ON n.id = m.id "
        "SET n.signature = 'verified'",
    )
    project(database_url)
    [task] = query(database_url, sa.select(tasks.c.message).where(tasks.c.task_id == "strength-task"))
    assert task.message != "unsigned forgery"


# ---------------------------------------------------------------- memory


def _huge_asr_body(task_id: str, megabytes: int) -> dict:
    """A word-level ASR result of about ``megabytes`` MiB, the largest body MPS sends."""
    body = load_fixture("vod/WorkflowTask-SmartSubtitles-AsrFullTextTask.json")
    body["WorkflowTaskEvent"]["TaskId"] = task_id
    words = [{"Word": f"w{i}'s", "OffsetStartTime": i * 10, "OffsetEndTime": i * 10 + 9} for i in range(200)]
    line = {"StartTime": 0.0, "EndTime": 2.0, "Text": "x" * 200, "Wordlist": words}
    size = len(orjson.dumps(line))
    segments = [dict(line, StartTime=float(i), EndTime=float(i) + 1) for i in range(megabytes * 1024 * 1024 // size)]
    for result in body["WorkflowTaskEvent"]["SmartSubtitlesTaskResult"]:
        task = result.get("AsrFullTextTask")
        if task and task.get("Output"):
            task["Output"]["SegmentSet"] = segments
    return body


@pytest.mark.process
def test_a_backlog_of_huge_bodies_projects_within_a_bounded_memory(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'j.db'}"
    from mps_callback.store.migrate import upgrade

    upgrade(url)
    run_ingest(url, [_huge_asr_body(f"huge-{i}", 15) for i in range(10)], project=False)
    env = {key: value for key, value in os.environ.items() if not key.startswith("MPS_")}
    env["MPS_DATABASE_URL"] = url
    worker = subprocess.Popen(
        [sys.executable, "-m", "mps_callback", "background"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    peak = 0
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            peak = max(peak, _peak_rss(worker.pid))
            if query(url, "SELECT COUNT(*) FROM notifications WHERE projected_at IS NULL")[0][0] == 0:
                break
            time.sleep(0.5)
        peak = max(peak, _peak_rss(worker.pid))
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    assert query(url, "SELECT COUNT(*) FROM notifications WHERE projected_at IS NULL")[0][0] == 0
    print(f"\nprojector peak RSS for ten 15 MiB bodies: {peak / 2**20:.0f} MiB")
    assert peak < 1024 * 2**20, f"peak RSS {peak / 2**20:.0f} MiB"


def _peak_rss(pid: int) -> int:
    """The process's high-water mark (VmHWM), in bytes."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return 0


def test_readiness_says_degraded_when_projection_lags(tmp_path: Path):
    """Found by an adversarial pass: with the projector refused its writes, /readyz said ready at 79 s of lag."""
    from mps_callback.store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'j.db'}"
    upgrade(url)
    run_ingest(url, [eof("waiting")], project=False)
    execute(url, "UPDATE notifications SET received_at = datetime('now', '-120 seconds')")
    with InProcessService(url, tmp_path) as service:
        readiness = service.get("/readyz").json()
    assert readiness["status"] == "degraded" and readiness["projection"]["lag_seconds"] >= 119
    assert any("projection lags" in problem for problem in readiness["problems"])


def test_a_replayed_sign_on_an_edited_body_cannot_change_a_finished_task(database_url: str):
    """Found by an adversarial pass: a captured Timestamp/Sign on an edited body (as verified as the real
    one) replaced the transcode output through ``"Progress": 100`` and failed the task through an extra
    FAIL item. Notifications here are all equally strong (unsigned), as a replayed Sign would be."""
    real = _finish("replayed-task")
    for result in real["WorkflowTaskEvent"]["MediaProcessResultSet"]:
        for task in result.values():
            if isinstance(task, dict):
                task.pop("Progress", None)
    processing = copy.deepcopy(real)
    processing["WorkflowTaskEvent"]["Status"] = "PROCESSING"
    edited = copy.deepcopy(real)
    for result in edited["WorkflowTaskEvent"]["MediaProcessResultSet"]:
        for task in result.values():
            if isinstance(task, dict) and isinstance(task.get("Output"), dict):
                task.update(Progress=100)
                task["Output"].update(Path="/evil/replaced.mp4", Bucket="evil-1250000000")
    extra = copy.deepcopy(real)
    extra["WorkflowTaskEvent"]["MediaProcessResultSet"].append(
        {
            "Type": "Transcode",
            "TranscodeTask": {
                "Status": "FAIL",
                "ErrCode": 666,
                "Message": "forged",
                "Input": {"Definition": 999999},
                "Output": {"Path": "/evil/extra.mp4"},
            },
        }
    )
    run_ingest(database_url, [processing, real])
    run_ingest(database_url, [edited, extra])  # later, one by one
    [task] = query(database_url, sa.select(tasks.c.failed, tasks.c.status).where(tasks.c.task_id == "replayed-task"))
    assert task.status == "FINISH" and not task.failed
    paths = [
        row.path or ""
        for row in query(database_url, sa.text("SELECT path FROM outputs WHERE task_id = 'replayed-task'"))
    ]
    assert paths and not any("/evil/" in path for path in paths), paths


# ---------------------------------------------------------------- found by the second adversarial pass


def _forged_fail_after(real: dict) -> dict:
    forged = copy.deepcopy(real)
    forged["WorkflowTaskEvent"]["Status"] = "PROCESSING"
    forged["WorkflowTaskEvent"]["AiAnalysisResultSet"] = [
        {"Type": "Cover", "CoverTask": {"Status": "FAIL", "ErrCode": 70000, "Message": "forged"}}
    ]
    forged["SessionContext"] = "attacker"
    return forged


def test_a_late_forgery_is_ignored_even_in_the_same_batch_as_the_finish(database_url: str):
    """Whether a notification came after the finish must not depend on batching (reproject batches them)."""
    real = _finish("same-batch")
    real.pop("SessionContext", None)
    run_ingest(database_url, [real, _forged_fail_after(real)])  # journaled in this order, projected in one batch
    [task] = query(database_url, sa.select(tasks).where(tasks.c.task_id == "same-batch"))
    assert not task.failed and task.status == "FINISH" and task.session_context != "attacker"
    [view] = query(database_url, "SELECT status, username FROM mps_task_result WHERE task_id = 'same-batch'")
    assert view.status == "FINISH" and view.username != "attacker"


def test_a_forged_task_level_success_cannot_pin_the_status_before_the_finish(database_url: str):
    forged = {
        "EventType": "WorkflowTask",
        "WorkflowTaskEvent": {"TaskId": "pinned", "Status": "SUCCESS", "Message": "all good"},
    }
    run_ingest(database_url, [forged, _finish("pinned")])
    [task] = query(database_url, sa.select(tasks.c.status, tasks.c.message).where(tasks.c.task_id == "pinned"))
    assert task.status == "FINISH" and task.message != "all good"


def test_an_error_code_beyond_int32_is_still_a_failure(database_url: str):
    body = _finish("huge-code")
    for result in body["WorkflowTaskEvent"]["MediaProcessResultSet"]:
        for task in result.values():
            if isinstance(task, dict) and "Status" in task:
                task.update(Status="SUCCESS", ErrCode=2**40)
    run_ingest(database_url, [body])
    [task] = query(database_url, sa.select(tasks.c.failed).where(tasks.c.task_id == "huge-code"))
    assert task.failed


def test_a_live_shaped_body_cannot_add_results_to_a_finished_file_task(database_url: str):
    run_ingest(database_url, [_finish("file-task")])
    before = query(database_url, "SELECT COUNT(*) FROM outputs WHERE task_id = 'file-task'")[0][0]
    live = load_fixture("live/AiAnalysisResult-HighlightResultSet.json")
    live["TaskId"] = "file-task"
    run_ingest(database_url, [live])
    assert query(database_url, "SELECT COUNT(*) FROM outputs WHERE task_id = 'file-task'")[0][0] == before


def _replace_times(node: object, value: str) -> int:
    """Set every wall-clock StartTime/EndTime string in ``node`` to ``value``; return how many."""
    count = 0
    if isinstance(node, dict):
        for key, child in node.items():
            if key in ("StartTime", "EndTime") and isinstance(child, str):
                node[key] = value
                count += 1
            else:
                count += _replace_times(child, value)
    elif isinstance(node, list):
        count += sum(_replace_times(child, value) for child in node)
    return count


def test_wall_clock_times_out_of_range_do_not_break_parsing():
    """0001-01-01T00:00:00+14:00 lies before year 1 in UTC: converting it raised OverflowError."""
    from mps_callback.project.parse import parse

    replaced = 0
    for path in fixture_files("live") + fixture_files("vod"):
        body = load_fixture(path.relative_to(path.parents[1]))
        replaced += _replace_times(body, "0001-01-01T00:00:00+14:00")
        parse(body)
    assert replaced > 0
