"""What an operator sees: metrics, readiness with the spool, retention, a damaged spool at start."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client import generate_latest

from mps_callback.journal.spool import Spool, encode_line
from mps_callback.send import stamp
from mps_callback.store.migrate import upgrade
from mps_callback.store.tables import notifications, tasks
from tests.support.bodies import journal_row, load_fixture
from tests.support.checks import wait_until
from tests.support.cli import cli
from tests.support.db import execute, query
from tests.support.projection import run_ingest
from tests.support.service import InProcessService


def series(name: str, **labels: str) -> str:
    selector = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    return name + ("{" + selector + "}" if labels else "")


def metric(text: str, name: str, **labels: str) -> float:
    found = re.search(re.escape(series(name, **labels)) + r" ([0-9.e+-]+)", text)
    assert found, f"{series(name, **labels)} not in /metrics"
    return float(found.group(1))


def metrics(service: InProcessService) -> str:
    return service.get("/metrics").text


def lag(service: InProcessService) -> float:
    return metric(metrics(service), "mps_projection_lag_seconds")


def test_metrics_count_outcomes_commits_and_spool(tmp_path: Path):
    """Counted from a reading before: in this process the counters add up across the tests' services."""
    with InProcessService(f"sqlite:///{tmp_path / 'j.db'}", tmp_path, notify_keys="k") as service:
        before = metrics(service)
        body = stamp(load_fixture("examples/doc-live-AiReviewResult.json"), "k")
        for _ in range(3):
            service.post(body)
        service.post({"NotificationType": "ProcessEof", "TaskId": "x"})  # unsigned
        service.post(b"not json")
        service.post(stamp({"EventType": "SomethingNew", "X": {"TaskId": "y"}}, "k"))
        assert service.project() == 2
        text = metrics(service)

    def grew(name: str, **labels: str) -> float:
        # a labelled series appears at its first count: absent before means 0
        earlier = metric(before, name, **labels) if series(name, **labels) in before else 0.0
        return metric(text, name, **labels) - earlier

    labels = {"kind": "live", "type": "AiReviewResult"}
    assert grew("mps_notifications_total", **labels, outcome="accepted", reason="") == 1
    assert grew("mps_notifications_total", **labels, outcome="duplicate", reason="") == 2
    assert grew("mps_notifications_total", kind="live", type="ProcessEof", outcome="refused", reason="unsigned") == 1
    assert grew("mps_notifications_total", kind="unknown", type="none", outcome="refused", reason="not_json") == 1
    assert grew("mps_notifications_total", kind="vod", type="other", outcome="accepted", reason="") == 1
    assert grew("mps_journal_commit_seconds_count") >= 2
    assert grew("mps_journal_batch_size_sum") >= 4
    assert grew("mps_projected_total") == 2
    assert metric(text, "mps_spool_depth") == 0
    assert metric(text, "mps_spool_oldest_seconds") == 0 and metric(text, "mps_spool_quarantined") == 0
    assert grew("mps_quarantined_total", reason="refused") == 0
    assert "SomethingNew" not in text  # body values never become label values


def test_the_lag_gauge_shows_a_waiting_notification_until_the_lag_job_sees_it_projected(tmp_path: Path):
    """The gauge is the background process's lag job (every few seconds), run here beside the app,
    read from /metrics only (/readyz would refresh it).

    A notification waits before the service starts, so the job's first pass shows it; after
    projecting, the gauge reads 0 only once the job has run again (reading /metrics refreshes
    nothing). A gauge the job never sets fails the first wait; one it never updates, the second.
    """
    url = f"sqlite:///{tmp_path / 'j.db'}"
    upgrade(url)
    run_ingest(url, [{"NotificationType": "ProcessEof", "TaskId": "waits"}], project=False)
    with InProcessService(url, tmp_path, background=("projection lag",)) as service:
        wait_until(lambda: lag(service) > 0, 10, "the lag job's first pass to show the waiting notification")
        assert service.project() == 1
        wait_until(lambda: lag(service) == 0, 15, "the lag job to see it projected")


def test_a_damaged_spool_at_start_is_quarantined_not_a_crash_loop(tmp_path: Path):
    spool = Spool(tmp_path / "spool")
    good = spool.write([journal_row("spooled-before-start")])
    damaged = spool.write([journal_row("will-be-damaged")])
    damaged.write_bytes(damaged.read_bytes()[:30])  # truncated by, say, a failing disk
    url = f"sqlite:///{tmp_path / 'j.db'}"
    quarantined = metric(generate_latest().decode(), "mps_quarantined_total", reason="damaged")
    with InProcessService(url, tmp_path) as service:
        wait_until(lambda: service.get("/readyz").json()["spool_depth"] == 0, 10, "the spool to drain")
        assert service.get("/healthz").status_code == 200
        readiness = service.get("/readyz").json()
        assert readiness["spool"]["quarantined"] == 1 and readiness["status"] == "degraded"
        assert metric(metrics(service), "mps_quarantined_total", reason="damaged") == quarantined + 1
    assert [r.task_id for r in query(url, sa.select(notifications.c.task_id))] == ["spooled-before-start"]
    assert len(list((tmp_path / "spool" / "quarantine").iterdir())) == 1
    assert "spool records quarantined" in service.logs()
    assert not good.exists() and not damaged.exists()


@pytest.mark.process
def test_spool_drain_command(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'j.db'}"
    assert cli("db", "upgrade", env={"MPS_DATABASE_URL": url}).returncode == 0
    Spool(tmp_path / "spool").write([journal_row("a"), journal_row("b")])
    result = cli("spool", "drain", env={"MPS_DATABASE_URL": url, "MPS_SPOOL_DIR": str(tmp_path / "spool")})
    assert result.returncode == 0 and "drained 2 notifications; 0 left" in result.stdout
    assert query(url, "SELECT COUNT(*) FROM notifications")[0][0] == 2


@pytest.mark.process
def test_retention_purges_old_journal_rows_and_tasks_only(database_url: str):
    run_ingest(database_url, [{"NotificationType": "ProcessEof", "TaskId": f"t{i}"} for i in range(3)])
    old = (datetime.now(UTC) - timedelta(days=40)).replace(tzinfo=None).isoformat(sep=" ")
    execute(
        database_url,
        f"UPDATE notifications SET received_at = '{old}' WHERE task_id IN ('t0', 't1')",
        f"UPDATE tasks SET last_received_at = '{old}' WHERE task_id IN ('t0', 't1')",
    )
    result = cli("purge", "--days", "30", env={"MPS_DATABASE_URL": database_url})
    assert result.returncode == 0, result.stderr
    assert "removed 2 notifications and 2 tasks older than 30 days" in result.stdout
    assert [r.task_id for r in query(database_url, sa.select(tasks.c.task_id))] == ["t2"]
    assert [r.task_id for r in query(database_url, sa.select(notifications.c.task_id))] == ["t2"]


@pytest.mark.process
def test_spool_requeue_command_puts_quarantined_records_back(tmp_path: Path):
    spool = Spool(tmp_path / "spool")
    spool.quarantine([encode_line(journal_row("set-aside"))], "refused by the database")
    spool.quarantine([b"damaged beyond repair"], "checksum or JSON damaged")
    result = cli("spool", "requeue", env={"MPS_SPOOL_DIR": str(tmp_path / "spool")})
    assert result.returncode == 0, result.stderr
    assert "requeued 1 notifications; 1 damaged records stay in quarantine" in result.stdout
    assert spool.depth() == 1 and spool.quarantined() == 1
