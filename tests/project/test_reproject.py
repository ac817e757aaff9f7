"""``mps-callback reproject`` and its filters on every backend: only what is asked is rebuilt.

Each test marks the tasks' rows by hand (a message no notification carries): a rebuilt task
loses its mark; a task left alone keeps it, and its output rows keep their ids.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from mps_callback.project import reproject as reproject_module
from mps_callback.project.parse import parse
from mps_callback.project.projector import Projector
from mps_callback.project.reproject import Selection, reproject
from mps_callback.storage import OutputUrls
from mps_callback.store.engine import create_engine
from mps_callback.store.tables import notifications, outputs, tasks
from tests.support.bodies import fixture_files, load_fixture
from tests.support.cli import cli, one_line_error
from tests.support.db import execute, query
from tests.support.projection import dump, run_ingest

pytestmark = pytest.mark.process  # the command runs as users run it: one process per reproject

WORKFLOW = load_fixture("vod/WorkflowTask-MediaProcess-TranscodeTask.json")
MARK = "marked by the test"


def workflow(task_id: str, **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(WORKFLOW)
    body["WorkflowTaskEvent"]["TaskId"] = task_id
    body.update(changes)
    return body


def mark(url: str, *task_ids: str) -> None:
    for task_id in task_ids:
        execute(url, f"UPDATE tasks SET message = '{MARK}' WHERE task_id = '{task_id}'")


def marked(url: str) -> set[str]:
    return {row.task_id for row in query(url, sa.select(tasks.c.task_id).where(tasks.c.message == MARK))}


def output_ids(url: str, task_id: str) -> list[int]:
    return [row.id for row in query(url, sa.select(outputs.c.id).where(outputs.c.task_id == task_id))]


def received_long_ago(url: str, task_id: str) -> None:
    """The task's notifications arrived two days ago."""
    old = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%d %H:%M:%S")
    execute(url, f"UPDATE notifications SET received_at = '{old}' WHERE task_id = '{task_id}'")


def park(url: str, task_id: str) -> None:
    """The task's notifications as the projector leaves them after their last failed attempt."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    execute(
        url,
        "UPDATE notifications SET projected_at = NULL, projection_attempts = 6, projection_error = 'refused', "
        f"projection_failed_at = '{now}' WHERE task_id = '{task_id}'",
    )


def reprojected(url: str, *options: str) -> int:
    result = cli("reproject", *options, env={"MPS_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[1])


def test_task_rebuilds_only_that_task(database_url: str):
    run_ingest(database_url, [workflow("rebuilt"), workflow("other"), workflow("rebuilt", SessionContext="again")])
    mark(database_url, "rebuilt", "other")
    before = {task_id: output_ids(database_url, task_id) for task_id in ("rebuilt", "other")}
    assert all(before.values())
    assert reprojected(database_url, "--task", "rebuilt") == 2
    assert marked(database_url) == {"other"}
    assert output_ids(database_url, "other") == before["other"]
    assert len(output_ids(database_url, "rebuilt")) == len(before["rebuilt"])
    [count] = query(database_url, sa.select(tasks.c.notification_count).where(tasks.c.task_id == "rebuilt"))
    assert count.notification_count == 2


def test_task_is_repeatable_and_an_unknown_one_rebuilds_nothing(database_url: str):
    run_ingest(database_url, [workflow("one"), workflow("two"), workflow("three")])
    mark(database_url, "one", "two", "three")
    assert reprojected(database_url, "--task", "one", "--task", "three", "--task", "no-such-task") == 2
    assert marked(database_url) == {"two"}


def test_since_rebuilds_the_tasks_that_received_notifications_since_then(database_url: str):
    run_ingest(database_url, [workflow("old"), workflow("recent")])
    received_long_ago(database_url, "old")
    received_long_ago(database_url, "recent")
    run_ingest(database_url, [workflow("recent", SessionContext="again")])
    mark(database_url, "old", "recent")
    # every notification of a task it takes is projected again, the older one too
    assert reprojected(database_url, "--since", _days_ago(1)) == 2
    assert marked(database_url) == {"old"}
    [task] = query(database_url, sa.select(tasks.c.notification_count).where(tasks.c.task_id == "recent"))
    assert task.notification_count == 2


def test_task_and_since_combine(database_url: str):
    run_ingest(database_url, [workflow("old"), workflow("recent")])
    received_long_ago(database_url, "old")
    mark(database_url, "old", "recent")
    assert reprojected(database_url, "--task", "old", "--since", _days_ago(1)) == 0
    assert marked(database_url) == {"old", "recent"}
    assert reprojected(database_url, "--task", "recent", "--task", "old", "--since", _days_ago(1)) == 1
    assert marked(database_url) == {"old"}


def test_failed_retries_only_the_parked_notifications_the_filters_take(database_url: str):
    run_ingest(database_url, [workflow("parked-1"), workflow("parked-2"), workflow("healthy")], project=False)
    run_ingest(database_url, [])  # projects the three
    execute(database_url, "DELETE FROM outputs WHERE task_id LIKE 'parked%'")
    execute(database_url, "DELETE FROM subtasks WHERE task_id LIKE 'parked%'")
    execute(database_url, "DELETE FROM tasks WHERE task_id LIKE 'parked%'")
    park(database_url, "parked-1")
    park(database_url, "parked-2")
    mark(database_url, "healthy")
    assert reprojected(database_url, "--failed", "--task", "parked-1") == 1
    assert {row.task_id for row in query(database_url, sa.select(tasks.c.task_id))} == {"healthy", "parked-1"}
    [still] = query(database_url, sa.select(notifications).where(notifications.c.task_id == "parked-2"))
    assert still.projection_failed_at is not None and still.projected_at is None
    received_long_ago(database_url, "parked-2")
    assert reprojected(database_url, "--failed", "--since", _days_ago(1)) == 0
    assert reprojected(database_url, "--failed") == 1
    assert marked(database_url) == {"healthy"}  # --failed rebuilds nothing else


def test_no_filter_rebuilds_everything_a_batch_of_tasks_at_a_time(database_url: str, monkeypatch: pytest.MonkeyPatch):
    bodies = [workflow(f"task-{i}") for i in range(7)] + [load_fixture("examples/doc-live-ProcessEof.json")]
    run_ingest(database_url, bodies)
    projected = dump(database_url)
    execute(
        database_url,
        "INSERT INTO tasks (task_id, kind, status, failed, first_received_at, last_received_at, notification_count, "
        "state_key, session_key) VALUES ('orphan', 'vod', 'FINISH', false, '2026-01-01 00:00:00', "
        "'2026-01-01 00:00:00', 1, '', '')",
    )
    mark(database_url, *(f"task-{i}" for i in range(7)))
    batches: list[list[str]] = []
    reset_tasks = reproject_module.reset_tasks

    async def recorded(engine: Any, task_ids: Any) -> None:
        batches.append(list(task_ids))
        await reset_tasks(engine, task_ids)

    monkeypatch.setattr(reproject_module, "TASK_BATCH", 3)
    monkeypatch.setattr(reproject_module, "reset_tasks", recorded)

    async def everything() -> int:
        engine = create_engine(database_url)
        try:
            return await reproject(engine, Projector(engine), Selection())
        finally:
            await engine.dispose()

    assert asyncio.run(everything()) == len(bodies)
    assert [len(batch) for batch in batches] == [3, 3, 3]  # 7 tasks, the live one and the orphan
    assert dump(database_url) == projected  # the orphan (no notification left) is gone, the rest as before
    assert not marked(database_url)


def test_a_bad_since_is_a_one_line_usage_error(tmp_path: Any):
    for bad in ("yesterday", "2026-13-01", "9999-12-31T23:59:59-23:59"):
        line = one_line_error(
            cli("reproject", "--since", bad, env={"MPS_DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}), 2
        )
        assert "--since" in line and bad in line, line
    assert not (tmp_path / "x.db").exists()  # refused before any database is opened


def _days_ago(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S")


def test_a_full_rebuild_beside_a_running_projector_gives_the_same_projection(
    database_url: str, monkeypatch: pytest.MonkeyPatch
):
    """The service keeps projecting while reproject works through the tasks: nothing lost, nothing doubled."""
    bodies = [workflow(f"busy-{i}") for i in range(12)] + [workflow("busy-0", SessionContext="again")]
    run_ingest(database_url, bodies)
    projected = dump(database_url)
    monkeypatch.setattr(reproject_module, "TASK_BATCH", 2)

    async def side_by_side() -> None:
        engines = [create_engine(database_url), create_engine(database_url)]
        done = asyncio.Event()

        async def service() -> None:
            while not done.is_set():
                await Projector(engines[1], batch_size=3).drain()
                await asyncio.sleep(0)

        try:
            beside = asyncio.create_task(service())
            await reproject(engines[0], Projector(engines[0]), Selection())
            done.set()
            await beside
            await Projector(engines[0]).drain()
        finally:
            for engine in engines:
                await engine.dispose()

    asyncio.run(side_by_side())
    assert dump(database_url) == projected
    assert query(database_url, "SELECT SUM(notification_count) FROM tasks")[0][0] == len(bodies)
    assert query(database_url, "SELECT COUNT(*) FROM notifications WHERE projected_at IS NULL")[0][0] == 0


BATCH = load_fixture("vod/BatchTask.json")


def batch_task(session_id: str | None, marker: str) -> dict[str, Any]:
    """A BatchTask notification (no TaskId): grouped by SessionId, or on its own without one."""
    body = copy.deepcopy(BATCH)
    body["SessionContext"] = marker  # a distinct body, so a distinct dedupe key
    if session_id is None:
        body.pop("SessionId", None)
    else:
        body["SessionId"] = session_id
    return body


def projected_task_ids(url: str) -> dict[int, str]:
    """notification id -> the task the SQL expression says it projects into."""
    rows = query(url, sa.select(notifications.c.id, reproject_module.PROJECTED_TASK_ID.label("task")))
    return {row.id: row.task for row in rows}


def test_the_made_up_task_id_in_sql_is_the_projectors(database_url: str):
    """Every fixture body, and BatchTasks with and without a SessionId (a long one clipped), land in
    the task the SQL expression names: reproject finds their journal rows by it."""
    paths = fixture_files("vod") + fixture_files("live")
    bodies = [load_fixture(path.relative_to(path.parents[1])) for path in paths]
    bodies += [batch_task("s1", "a"), batch_task(None, "b"), batch_task("x" * 255, "c")]
    run_ingest(database_url, bodies)
    in_sql = projected_task_ids(database_url)
    checked = 0
    for row in query(database_url, sa.select(notifications.c.id, notifications.c.body)):
        projection = parse(row.body if isinstance(row.body, dict) else orjson.loads(row.body), OutputUrls())
        if projection is not None:  # a Tencent VOD event: no task
            assert in_sql[row.id] == projection.task_id, row.id
            checked += 1
    assert checked == len(bodies)


def test_a_task_without_task_id_is_rebuilt_by_its_made_up_id(database_url: str):
    run_ingest(database_url, [batch_task("s1", "a"), batch_task("s1", "b"), batch_task(None, "c"), workflow("other")])
    alone, by_session = sorted(
        row.task_id for row in query(database_url, sa.select(tasks.c.task_id)) if row.task_id != "other"
    )
    assert by_session == "BatchTask-session-s1" and alone.startswith("BatchTask-")

    mark(database_url, alone, by_session, "other")
    assert reprojected(database_url, "--task", by_session) == 2
    assert marked(database_url) == {alone, "other"}

    mark(database_url, by_session)
    received_long_ago(database_url, "other")
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    assert reprojected(database_url, "--since", hour_ago) == 3
    assert marked(database_url) == {"other"}

    mark(database_url, alone, by_session)
    assert reprojected(database_url) == 4
    assert marked(database_url) == set()
    assert len(query(database_url, sa.select(tasks.c.task_id))) == 3
