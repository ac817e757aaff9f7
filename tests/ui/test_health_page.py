"""``/ui/health`` in process: the current state from a real spool and database, the charts' series, hostile input."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mps_callback.journal.spool import Spool
from mps_callback.send import stamp
from tests.support.bodies import load_fixture
from tests.support.checks import wait_until
from tests.support.db import execute
from tests.support.deliveries import START, add
from tests.support.service import InProcessService

TRANSCODE = load_fixture("examples/doc-vod-WorkflowTask-transcode.json")
TASK_ID = TRANSCODE["WorkflowTaskEvent"]["TaskId"]
FULLWIDTH_SIX = "\uff16"
HOSTILE_HOURS = ["0", "49", "-1", "abc", "1.5", "1e1", " 6", FULLWIDTH_SIX, "9" * 20, "", "<script>alert(1)</script>"]


@pytest.fixture
def service(database_url: str, tmp_path: Path) -> Iterator[InProcessService]:
    with InProcessService(database_url, tmp_path, notify_keys="k") as running:
        yield running


def test_the_page_shows_the_spool_the_quarantine_a_parked_projection_and_dead_deliveries(
    database_url: str, service: InProcessService
):
    spool = Spool(service.spool_dir)
    spool.hold({"raw": "{}"}, attempts=1, delay_seconds=3600, spooled_ns=time.time_ns() - 90 * 10**9)
    spool.quarantine([b"not a record"], "damaged")
    assert service.post(stamp(TRANSCODE, "k")).status_code == 200
    execute(
        database_url,
        "UPDATE notifications SET projection_attempts = 6, projection_error = 'refused', "
        "projection_failed_at = received_at",
    )
    add(database_url, {"sink": "chat-room", "status": "dead"}, {"sink": "chat-room", "status": "dead"})
    add(database_url, {"sink": "archive", "status": "pending", "next_attempt_at": START})

    page = service.get("/ui/health")
    assert page.status_code == 200, page.text
    html = page.text
    assert '<dd id="spool-depth" class="run">1</dd>' in html
    assert '<dd id="spool-oldest">1 min 30 s</dd>' in html or '<dd id="spool-oldest">1 min 31 s</dd>' in html
    assert '<dd id="spool-quarantined" class="bad">1</dd>' in html
    assert '<dd id="projection-failed" class="bad">1</dd>' in html
    assert 'id="projection-lag"' in html
    assert "<td>chat-room</td>" in html and '<td class="dead bad">2</td>' in html
    assert "<td>archive</td>" in html and '<td class="backlog">1</td>' in html
    assert "degraded" in html and "spool requeue" in html and "reproject --failed" in html
    assert 'hx-get="/ui/health/now"' in html and 'hx-trigger="every 5s"' in html

    partial = service.get("/ui/health/now", headers={"HX-Request": "true"})
    assert partial.status_code == 200
    assert "<html" not in partial.text
    assert '<section id="health-now"' in partial.text and "<td>chat-room</td>" in partial.text


def test_the_page_without_trouble_says_ready_and_no_sink_owes_anything(service: InProcessService):
    html = service.get("/ui/health").text
    assert '<span class="health-state ok">ready</span>' in html
    assert '<dd id="spool-depth" class="">0</dd>' in html
    assert "No sink owes anything." in html
    assert 'data-series="/ui/health/series.json?hours=6"' in html
    assert "no notifications" in html and "no refusals" in html


def test_the_sampler_job_counts_notifications_by_outcome_and_refusals_by_reason(tmp_path: Path):
    with InProcessService(
        f"sqlite+aiosqlite:///{tmp_path}/ui.db",
        tmp_path,
        notify_keys="k",
        background=("health samples",),
        health_sample_seconds=0.2,
    ) as service:

        def counted() -> dict[str, float]:
            found = service.get("/ui/health/series.json?hours=1").json()
            return {
                **{f"outcome {k}": sum(v) for k, v in found["notifications"].items()},
                **{f"reason {k}": sum(v) for k, v in found["refusals"].items()},
                "commits": sum(found["journal"]["commits"]),
            }

        # Outside serve the job's first run only takes its starting point: empty bodies until one is counted.
        wait_until(
            lambda: service.post(b"").status_code == 400 and counted().get("reason empty", 0) > 0,
            10,
            "the sampler's first runs",
        )
        before = counted()
        for _ in range(3):
            assert service.post(stamp(TRANSCODE, "k")).status_code == 200
        for _ in range(2):
            assert service.post(stamp(TRANSCODE, "wrong-key")).status_code == 401
        assert service.post(b"not json").status_code == 400

        wait_until(lambda: counted().get("reason not_json") == 1, 10, "the sampler wrote the last refusal")
        after = counted()
        grown = {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}
        assert grown.pop("commits") >= 1
        late_probes = grown.pop("reason empty", 0)  # the last empty body may be counted after ``before``
        grown["outcome refused"] -= late_probes
        assert grown == {
            "outcome accepted": 1,
            "outcome duplicate": 2,
            "outcome refused": 3,
            "reason bad_sign": 2,
            "reason not_json": 1,
        }
        html = service.get("/ui/health?hours=1").text
        assert "<td>bad_sign</td><td>2</td>" in html and "<td>not_json</td><td>1</td>" in html


@pytest.mark.parametrize("hours", [1, 48])
def test_the_series_has_one_value_per_minute_of_the_window_zeros_where_nothing_was_counted(
    service: InProcessService, hours: int
):
    answer = service.get(f"/ui/health/series.json?hours={hours}")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    found = answer.json()
    assert set(found) == {"hours", "sample_seconds", "minutes", "notifications", "refusals", "journal"}
    minutes = found["minutes"]
    assert len(minutes) == hours * 60 and all(b - a == 60 for a, b in itertools.pairwise(minutes))
    assert minutes[-1] <= time.time() < minutes[-1] + 60
    assert set(found["journal"]) == {"commits", "mean_ms", "p95_ms"}
    assert found["journal"]["commits"] == [0.0] * len(minutes)
    assert found["journal"]["mean_ms"] == [None] * len(minutes)


@pytest.mark.parametrize("hours", HOSTILE_HOURS)
def test_a_hostile_window_is_a_400_with_the_reason_and_nothing_of_it_runs(tmp_path: Path, hours: str):
    with InProcessService(f"sqlite+aiosqlite:///{tmp_path}/ui.db", tmp_path) as service:
        data = service.get("/ui/health/series.json", params={"hours": hours})
        assert data.status_code == 400 and data.json() == {"detail": "hours must be a whole number from 1 to 48"}
        page = service.get("/ui/health", params={"hours": hours})
        assert page.status_code == 400 and "hours must be a whole number from 1 to 48" in page.text
        assert "<script>alert" not in page.text and "alert(1)" not in page.text


def test_the_health_routes_need_the_login_when_a_token_is_set(tmp_path: Path):
    with InProcessService(f"sqlite+aiosqlite:///{tmp_path}/ui.db", tmp_path, api_token="secret") as service:
        for path in ("/ui/health", "/ui/health/now", "/ui/health/series.json?hours=1"):
            answer = service.get(path)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/login"), path


def test_without_a_database_the_page_still_shows_the_spool_and_says_why_the_charts_are_missing(tmp_path: Path):
    with InProcessService(f"sqlite+aiosqlite:///{tmp_path}/empty.db", tmp_path, migrate=False) as service:
        Spool(service.spool_dir).quarantine([b"a damaged record"], "damaged")
        page = service.get("/ui/health")
        assert page.status_code == 200, page.text
        assert '<span class="health-state bad">unavailable</span>' in page.text
        assert "no such table" in page.text and "The charts need the database" in page.text
        assert '<dd id="spool-quarantined" class="bad">1</dd>' in page.text
        assert "Unknown while the database is unavailable." in page.text
        data = service.get("/ui/health/series.json?hours=1")
        assert data.status_code == 503 and "no such table" in data.text
