"""``mps-callback deliveries list|retry|backfill`` as an operator runs them, on real databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from mps_callback.store.tables import deliveries
from tests.support.bodies import load_fixture
from tests.support.cli import cli, one_line_error
from tests.support.db import query
from tests.support.deliveries import START, add
from tests.support.forward import SECRET
from tests.support.projection import run_ingest

pytestmark = pytest.mark.process

SUBTITLES = "vod/WorkflowTask-SmartSubtitles-AsrFullTextTask.json"
PASSWORD = "hunter2-in-the-url"


def config(tmp_path: Path) -> Path:
    """Two sinks: ``late`` wants everything, ``alerts`` only failures (neither is ever sent to here)."""
    path = tmp_path / "sinks.toml"
    path.write_text(
        f'[[sink]]\nname = "late"\nurl = "http://user:{PASSWORD}@127.0.0.1:9/hooks"\nsecret = "{SECRET}"\n'
        f'[[sink]]\nname = "alerts"\nurl = "http://127.0.0.1:9/alerts"\nsecret = "{SECRET}"\n'
        'events = ["task.failed"]\n'
    )
    return path


def env(url: str, tmp_path: Path | None = None) -> dict[str, str]:
    return {"MPS_DATABASE_URL": url} | ({"MPS_FORWARD_CONFIG": str(config(tmp_path))} if tmp_path else {})


def states(url: str) -> list[tuple[int, str]]:
    return [tuple(row) for row in query(url, sa.select(deliveries.c.id, deliveries.c.status).order_by(deliveries.c.id))]


def test_list_writes_json_lines_newest_first_filtered(database_url: str):
    ids = add(
        database_url,
        {"sink": "app", "status": "dead"},
        {"sink": "chat", "status": "dead"},
        {"sink": "app", "status": "delivered"},
        {"sink": "app", "status": "dead", "created_at": START + timedelta(days=2)},
    )
    result = cli("deliveries", "list", "--sink", "app", "--status", "dead", env=env(database_url))
    assert result.returncode == 0, result.stderr
    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [line["id"] for line in lines] == [ids[3], ids[0]]
    assert {line["sink"] for line in lines} == {"app"} and "data" not in lines[0]
    assert lines[0]["created_at"].endswith("Z")

    since = cli("deliveries", "list", "--since", (START + timedelta(days=1)).isoformat(), env=env(database_url))
    assert [orjson.loads(line)["id"] for line in since.stdout.splitlines()] == [ids[3]]


def test_list_and_retry_select_by_task_and_event_type(database_url: str):
    ids = add(
        database_url,
        {"status": "dead", "task_id": "wanted", "event": "task.failed"},
        {"status": "dead", "task_id": "wanted", "event": "notification.received", "data": None},
        {"status": "dead", "task_id": "other", "event": "task.failed"},
    )

    def listed(*options: str) -> list[int]:
        result = cli("deliveries", "list", *options, env=env(database_url))
        assert result.returncode == 0, result.stderr
        return [orjson.loads(line)["id"] for line in result.stdout.splitlines()]

    assert listed("--task", "wanted") == [ids[1], ids[0]]
    assert listed("--event", "task.failed") == [ids[2], ids[0]]
    assert listed("--task", "wanted", "--event", "task.failed") == [ids[0]]
    assert listed("--task", "nobody") == []

    result = cli("deliveries", "retry", "--task", "wanted", "--event", "task.failed", env=env(database_url))
    assert result.stdout.strip() == "made 1 deliveries due now", result.stderr
    assert states(database_url) == [(ids[0], "pending"), (ids[1], "dead"), (ids[2], "dead")]


@pytest.mark.parametrize("command", ["list", "retry"])
def test_list_and_retry_refuse_bad_options_in_one_line(tmp_path: Path, command: str):
    url = f"sqlite:///{tmp_path / 'unused.db'}"
    statuses = "pending, delivered, dead" if command == "list" else "pending, dead"
    status = "lost" if command == "list" else "delivered"
    assert statuses in one_line_error(cli("deliveries", command, "--status", status, env=env(url)), 2)
    assert "--since" in one_line_error(cli("deliveries", command, "--since", "yesterday", env=env(url)), 2)
    line = one_line_error(cli("deliveries", command, "--event", "task.exploded", env=env(url)), 2)
    assert "task.exploded" in line and "notification.received, task.updated, task.finished, task.failed" in line
    assert "x" * 65 not in one_line_error(cli("deliveries", command, "--event", "x" * 5000, env=env(url)), 2)
    assert "255" in one_line_error(cli("deliveries", command, "--task", "t" * 256, env=env(url)), 2)
    assert "TaskId" in one_line_error(cli("deliveries", command, "--task", "", env=env(url)), 2)


def test_retry_makes_matching_deliveries_due_now_and_leaves_delivered_ones(database_url: str):
    ids = add(
        database_url,
        {"sink": "app", "status": "dead", "attempts": 10},
        {"sink": "chat", "status": "dead"},
        {"sink": "app", "status": "delivered"},
        {"sink": "app", "status": "pending"},
    )
    result = cli("deliveries", "retry", "--sink", "app", "--status", "dead", env=env(database_url))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "made 1 deliveries due now"
    [(status, attempts, due)] = query(
        database_url,
        sa.select(deliveries.c.status, deliveries.c.attempts, deliveries.c.next_attempt_at).where(
            deliveries.c.id == ids[0]
        ),
    )
    assert (status, attempts) == ("pending", 10)
    assert due.replace(tzinfo=due.tzinfo or UTC) <= datetime.now(UTC)

    by_id = cli("deliveries", "retry", str(ids[1]), str(ids[2]), env=env(database_url))
    assert by_id.stdout.strip() == "made 1 deliveries due now", "the delivered one is not made due"
    assert states(database_url) == [
        (ids[0], "pending"),
        (ids[1], "pending"),
        (ids[2], "delivered"),
        (ids[3], "pending"),
    ]


def test_backfill_owes_a_late_sink_what_happened_since_then(database_url: str, tmp_path: Path):
    body = load_fixture(SUBTITLES)
    task_id = body["WorkflowTaskEvent"]["TaskId"]
    run_ingest(database_url, [body])  # no sinks configured then: no deliveries
    assert states(database_url) == []

    result = cli("deliveries", "backfill", "--sink", "late", "--since", "2000-01-01", env=env(database_url, tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "owed 1 notification.received and 1 task events to late"
    rows = query(
        database_url,
        sa.select(
            deliveries.c.sink, deliveries.c.event, deliveries.c.task_id, deliveries.c.status, deliveries.c.data
        ).order_by(deliveries.c.id),
    )
    assert [(row.sink, row.event, row.task_id, row.status) for row in rows] == [
        ("late", "notification.received", task_id, "pending"),
        ("late", "task.finished", task_id, "pending"),
    ]
    snapshot = rows[1].data
    assert snapshot["task_id"] == task_id and snapshot["status"] == "FINISH"
    assert any(output["url"] and output["url"].endswith(".vtt") for output in snapshot["outputs"])

    alerts = cli("deliveries", "backfill", "--sink", "alerts", "--since", "2000-01-01", env=env(database_url, tmp_path))
    assert alerts.stdout.strip() == "owed 0 notification.received and 0 task events to alerts", "its filter: failures"
    later = cli("deliveries", "backfill", "--sink", "late", "--since", "2999-01-01", env=env(database_url, tmp_path))
    assert later.stdout.strip() == "owed 0 notification.received and 0 task events to late"


def test_backfill_refuses_an_unknown_sink_without_showing_urls(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'unused.db'}"
    line = one_line_error(
        cli("deliveries", "backfill", "--sink", "nope", "--since", "2026-01-01", env=env(url, tmp_path)), 2
    )
    assert "nope" in line and "late" in line and PASSWORD not in line and "127.0.0.1" not in line
    assert "MPS_FORWARD_CONFIG" in one_line_error(
        cli("deliveries", "backfill", "--sink", "late", "--since", "2026-01-01", env=env(url)), 2
    )
