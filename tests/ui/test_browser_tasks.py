"""The tasks page in a real browser against a real ``serve``: filter, share the view, page, watch it live.

Set ``MPS_SCREENSHOT_DIR=docs`` to write ``dashboard-tasks.png`` there (the README's screenshot).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from mps_callback.send import stamp
from tests.support.bodies import fixture_files, load_fixture
from tests.support.checks import wait_until
from tests.support.db import count
from tests.support.projection import live_series, processing_version
from tests.support.service import Service, start_service

pytestmark = pytest.mark.process

TOKEN = "ui-tasks-token"
TRANSCODE = load_fixture("examples/doc-vod-WorkflowTask-transcode.json")
TRANSCODE_ID = TRANSCODE["WorkflowTaskEvent"]["TaskId"]
SUBTITLES = load_fixture("vod/WorkflowTask-SmartSubtitles-TransTextTask.json")
SUBTITLES_ID = SUBTITLES["WorkflowTaskEvent"]["TaskId"]
DELOGO = load_fixture("vod/WorkflowTask-AiAnalysis-DeLogoTask.json")
DELOGO_ID = DELOGO["WorkflowTaskEvent"]["TaskId"]
LIVE_ID = "2400002-procedure-live-browser-1"
ROWS = "table.tasks tbody tr"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Service]:
    service = start_service(f"sqlite+aiosqlite:///{tmp_path}/ui.db", tmp_path, api_token=TOKEN, notify_keys="k")
    try:
        yield service
    finally:
        service.stop()


def send(service: Service, *bodies: dict[str, Any]) -> None:
    """Post ``bodies`` as MPS would and wait until the background process has projected every one."""
    before = count(service.database_url)
    for body in bodies:
        assert service.post(stamp(body, "k")).status_code == 200
    wait_until(
        lambda: (
            count(service.database_url) == before + len(bodies)
            and count(service.database_url, where="projected_at IS NULL") == 0
        ),
        30,
        "the notifications projected",
    )


def renamed(body: dict[str, Any], task_id: str) -> dict[str, Any]:
    body["WorkflowTaskEvent"]["TaskId"] = task_id
    return body


def log_in(page: Page, service: Service, path: str = "/ui/") -> None:
    page.goto(service.base_url + path)
    page.get_by_label("API token").fill(TOKEN)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(service.base_url + path)


def listed(page: Page) -> list[str]:
    return [text.strip() for text in page.locator("table.tasks td.task-id > a").all_inner_texts()]


def test_filter_through_the_form_then_share_the_url(served: Service, page: Page):
    send(served, TRANSCODE, SUBTITLES, processing_version(DELOGO), *live_series(LIVE_ID))
    log_in(page, served)
    expect(page.locator(ROWS)).to_have_count(4)
    assert listed(page) == [LIVE_ID, DELOGO_ID, SUBTITLES_ID, TRANSCODE_ID]
    first_time = page.locator("table.tasks time").first
    expect(first_time).not_to_have_text(re.compile("UTC$"))  # shown in the browser's zone
    assert (first_time.get_attribute("title") or "").endswith("UTC")  # UTC on hover

    page.locator('select[name="status"]').select_option("failed")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(served.base_url + "/ui/?status=failed")  # only what was asked
    expect(page.locator(ROWS)).to_have_count(1)
    assert listed(page) == [TRANSCODE_ID]
    expect(page.locator("table.tasks tbody tr").first.locator(".status").first).to_have_text("failed")

    shared = page.url
    page.goto(served.base_url + "/ui/?kind=live")
    assert listed(page) == [LIVE_ID]
    expect(page.locator(".status-chips .chip", has_text="FINISH").locator(".count")).to_have_text("1")
    expect(page.locator('select[name="kind"]')).to_have_value("live")
    page.goto(shared)
    expect(page.locator('select[name="status"]')).to_have_value("failed")
    assert listed(page) == [TRANSCODE_ID]

    page.locator('input[name="q"]').fill("user-7")
    page.locator('select[name="match"]').select_option("contains")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(served.base_url + "/ui/?status=failed&q=user-7&match=contains")
    expect(page.locator(ROWS)).to_have_text(re.compile("No task matches these filters"))
    page.go_back()  # the fields left out of the URL are editable again
    expect(page.locator('input[name="type"]')).to_be_editable()
    page.goto(served.base_url + "/ui/?q=user-7&match=contains")
    assert listed(page) == [LIVE_ID]

    page.locator(".status-chips .chip", has_text="PROCESSING").click()
    expect(page).to_have_url(re.compile(r"status=PROCESSING"))
    expect(page.locator(ROWS)).to_have_text(re.compile("No task matches"))  # the chip kept the search


def test_next_page_then_back_to_the_newest(served: Service, page: Page):
    bodies = [load_fixture(path) for path in fixture_files("vod") if path.name.startswith("WorkflowTask-")][:5]
    send(served, *bodies)
    log_in(page, served, "/ui/?limit=2")
    first = listed(page)
    assert len(first) == 2
    page.get_by_role("link", name="Next page »").click()
    expect(page).to_have_url(re.compile(r"limit=2&cursor="))
    second = listed(page)
    assert len(second) == 2 and not set(first) & set(second)
    page.get_by_role("link", name="« Newest").click()
    assert listed(page) == first


def test_a_task_sent_while_the_page_is_open_appears_without_a_reload(served: Service, page: Page):
    send(served, TRANSCODE)
    log_in(page, served)
    assert listed(page) == [TRANSCODE_ID]
    page.evaluate("window.stillTheSamePage = true")
    with page.expect_response(lambda answer: "/ui/?" in answer.url and answer.status == 204, timeout=15_000):
        pass  # the page polls, and nothing changed: 204, nothing swapped

    send(served, SUBTITLES)
    expect(page.locator("table.tasks td.task-id > a", has_text=SUBTITLES_ID)).to_be_visible(timeout=20_000)
    assert listed(page) == [SUBTITLES_ID, TRANSCODE_ID]
    assert page.evaluate("window.stillTheSamePage") is True
    expect(page.locator(".status-chips .chip", has_text="FINISH").locator(".count")).to_have_text("2")
    expect(page.locator("table.tasks time").first).not_to_have_text(re.compile("UTC$"))  # localised after the swap


def test_screenshot(served: Service, page: Page, tmp_path: Path):
    """The page as the README shows it: every vod fixture and a live task, 1280x800."""
    vod = [load_fixture(path) for path in fixture_files("vod")]
    running = [
        renamed(processing_version(body), body["WorkflowTaskEvent"]["TaskId"] + "-running")
        for body in (DELOGO, SUBTITLES)
    ]
    send(served, *vod, TRANSCODE, *running, *live_series(LIVE_ID))
    page.set_viewport_size({"width": 1280, "height": 800})
    log_in(page, served)
    expect(page.locator(ROWS).first).to_be_visible()
    target = Path(os.environ.get("MPS_SCREENSHOT_DIR") or tmp_path) / "dashboard-tasks.png"
    page.screenshot(path=str(target))
    assert target.stat().st_size > 10_000
