"""The health page in a real browser against a real ``serve`` (two web workers and its background process).

The background process samples the counters every second here (``MPS_HEALTH_SAMPLE_SECONDS``),
reading both web workers' counters through serve's multiprocess directory, as it does each
minute in production; the charts must be drawn from what it wrote.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from mps_callback.journal.spool import Spool
from mps_callback.send import stamp
from mps_callback.store import samples
from mps_callback.store.engine import create_engine
from tests.support.bodies import load_fixture
from tests.support.checks import wait_until
from tests.support.db import execute, query, run
from tests.support.deliveries import START, add
from tests.support.service import Service, start_service

pytestmark = pytest.mark.process

TRANSCODE = load_fixture("examples/doc-vod-WorkflowTask-transcode.json")


def sums(service: Service) -> dict[str, float]:
    found = service.get("/ui/health/series.json?hours=1").json()
    return {
        **{f"outcome {name}": sum(values) for name, values in found["notifications"].items()},
        **{f"reason {name}": sum(values) for name, values in found["refusals"].items()},
    }


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Service]:
    service = start_service(
        f"sqlite+aiosqlite:///{tmp_path}/ui.db",
        tmp_path,
        notify_keys="k",
        web_workers="2",
        health_sample_seconds="1",
    )
    try:
        wait_until(lambda: "health samples" in service.logs(), 20, "the background process started its jobs")
        for key, status in (("k", 200), ("k", 200), ("k", 200), ("wrong", 401), ("wrong", 401)):
            assert service.post(stamp(TRANSCODE, key)).status_code == status
        wanted = {"outcome accepted": 1, "outcome duplicate": 2, "outcome refused": 2, "reason bad_sign": 2}
        wait_until(lambda: sums(service) == wanted, 20, "the sampler wrote every notification's minute")
        yield service
    finally:
        service.stop()


def chart(page: Page, name: str) -> dict[str, Any]:
    """What uPlot drew in the chart ``name``: its canvas size and each series' label and sum."""
    drawn: dict[str, Any] = page.evaluate(
        """(name) => {
            const element = document.getElementById(`chart-${name}`);
            const canvas = element.querySelector("canvas");
            const u = element.uplot;
            return {
                width: canvas.width, height: canvas.height, points: u.data[0].length,
                series: Object.fromEntries(u.series.slice(1).map((s, i) => [
                    s.label, u.data[i + 1].reduce((total, value) => total + (value || 0), 0)])),
            };
        }""",
        name,
    )
    return drawn


def test_the_charts_are_drawn_from_the_samples_and_the_state_refreshes_itself(served: Service, page: Page):
    page.goto(served.base_url + "/ui/health?hours=1")
    expect(page.locator(".health-charts[data-drawn]")).to_have_count(1)
    expect(page.locator(".health-chart canvas")).to_have_count(3)

    notifications, refusals, journal = (chart(page, name) for name in ("notifications", "refusals", "journal"))
    for drawn in (notifications, refusals, journal):
        assert drawn["width"] > 0 and drawn["height"] > 0 and drawn["points"] == 60
    assert notifications["series"] == {"accepted": 1, "duplicate": 2, "refused": 2}
    assert refusals["series"] == {"bad_sign": 2}
    assert journal["series"]["mean"] > 0 and journal["series"]["95th percentile"] > 0

    expect(page.locator("#spool-quarantined")).to_have_text("0")
    Spool(served.spool_dir).quarantine([b"a damaged record"], "damaged")
    expect(page.locator("#spool-quarantined")).to_have_text("1", timeout=15_000)  # htmx polls every 5 s
    expect(page.locator(".health-problems")).to_contain_text("quarantined")
    expect(page.locator("#health-now time")).not_to_contain_text("UTC")  # the swapped-in time shown in local time


# ---------------------------------------------------------------- six hours of history, and trouble


def seed_history(url: str, now: datetime) -> None:
    """Six hours of samples from two nodes, shaped like a working day (docs/dashboard-health.png shows them)."""

    async def go() -> None:
        engine = create_engine(url)
        try:
            for step in range(360):
                minute = now - timedelta(minutes=step)
                wave = 1 + math.sin(step / 40)
                for node, share in (("web-a:101", 0.6), ("web-b:202", 0.4)):
                    commits = round(share * (30 + 25 * wave))
                    grown = {
                        ("notifications", "accepted"): commits,
                        ("notifications", "duplicate"): round(share * 4 * wave),
                        ("notifications", "refused"): 3 if step % 37 == 0 else 0,
                        ("refusals", "bad_sign"): 2 if step % 37 == 0 else 0,
                        ("refusals", "expired"): 1 if step % 37 == 0 else 0,
                        ("journal_commits", ""): commits,
                        ("journal_commit_seconds", ""): commits * (0.002 + 0.001 * wave),
                        **{("journal_commit_le", le): commits * part for le, part in histogram(wave)},
                    }
                    await samples.record(engine, minute, node, {key: float(v) for key, v in grown.items() if v})
        finally:
            await engine.dispose()

    run(go())


def histogram(wave: float) -> tuple[tuple[str, float], ...]:
    """Cumulative shares of commits per bucket bound: slower commits when busier."""
    return (("0.001", 0.2), ("0.0025", 0.95 - 0.2 * wave), ("0.005", 0.99 - 0.03 * wave), ("0.01", 1.0), ("+Inf", 1.0))


@pytest.fixture
def troubled(tmp_path: Path) -> Iterator[Service]:
    """A serve with six hours of history, a parked projection, a held spool record and deliveries owed.

    Written from a thread of its own: Playwright's sync API runs an event loop in this one (asyncio.run refuses).
    """
    url = f"sqlite+aiosqlite:///{tmp_path}/ui.db"
    service = start_service(url, tmp_path, notify_keys="k")
    try:
        assert service.post(stamp(TRANSCODE, "k")).status_code == 200
        wait_until(lambda: query(url, "SELECT COUNT(*) FROM tasks")[0][0] == 1, 20, "the task projected")
        execute(url, "UPDATE notifications SET projected_at = NULL, projection_failed_at = received_at")
        Spool(service.spool_dir).hold({"raw": "{}"}, 1, 3600, time.time_ns() - 95 * 10**9)
        with ThreadPoolExecutor(1) as thread:
            thread.submit(add, url, *[{"sink": "app", "status": "pending", "next_attempt_at": START}] * 3).result()
            thread.submit(add, url, *[{"sink": "chat", "status": "dead"}] * 2).result()
            thread.submit(seed_history, url, datetime.now(UTC)).result()
        yield service
    finally:
        service.stop()


def test_six_hours_of_samples_and_an_operators_trouble_on_one_page(troubled: Service, page: Page, tmp_path: Path):
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(troubled.base_url + "/ui/health")
    expect(page.locator(".health-charts[data-drawn]")).to_have_count(1)
    assert chart(page, "notifications")["points"] == 360
    assert chart(page, "refusals")["series"] == {"bad_sign": 40, "expired": 20}  # two nodes, ten minutes
    expect(page.locator(".health-sinks")).to_contain_text("chat")
    expect(page.locator("#spool-depth")).to_have_text("1")
    expect(page.locator("#projection-failed")).to_have_text("1")
    page.screenshot(path=tmp_path / "dashboard-health.png")
    if target := os.environ.get("MPS_SCREENSHOT_DIR"):  # how docs/dashboard-health.png is made
        shutil.copy(tmp_path / "dashboard-health.png", Path(target) / "dashboard-health.png")
