"""The dashboard in a real browser against a real ``serve``: log in, see the task MPS just sent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from mps_callback.send import stamp
from tests.support.bodies import load_fixture
from tests.support.checks import wait_until
from tests.support.service import Service, start_service

pytestmark = pytest.mark.process

TOKEN = "ui-browser-token"
TRANSCODE = load_fixture("examples/doc-vod-WorkflowTask-transcode.json")
TASK_ID = TRANSCODE["WorkflowTaskEvent"]["TaskId"]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Service]:
    service = start_service(f"sqlite+aiosqlite:///{tmp_path}/ui.db", tmp_path, api_token=TOKEN, notify_keys="k")
    try:
        assert service.post(stamp(TRANSCODE, "k")).status_code == 200
        wait_until(
            lambda: (
                service.get(f"/v1/tasks/{TASK_ID}", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
            ),
            20,
            "the task projected",
        )
        yield service
    finally:
        service.stop()


def test_log_in_and_open_the_task(served: Service, page: Page):
    page.goto(served.base_url + "/")
    expect(page).to_have_url(served.base_url + "/ui/login?next=/ui/")
    page.get_by_label("API token").fill(TOKEN)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(served.base_url + "/ui/")
    page.get_by_role("link", name=TASK_ID).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(TASK_ID)


def test_an_action_with_another_csrf_token_is_refused_with_a_page_saying_why(served: Service, browser: Browser):
    """A form posted with a token that is not this browser's (a forged request) is refused, the task left as is."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(served.base_url + "/ui/login")
        page.get_by_label("API token").fill(TOKEN)
        page.get_by_role("button", name="Log in").click()
        page.goto(f"{served.base_url}/ui/tasks/{TASK_ID}")
        page.locator("input[name=csrf]").first.wait_for(state="attached")
        page.evaluate("() => document.querySelectorAll('input[name=csrf]').forEach(i => { i.value = '0'.repeat(32) })")
        page.get_by_role("button", name="Reproject this task").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("(403)")  # a page, not JSON
        expect(page.get_by_text("missing or wrong CSRF token")).to_be_visible()
        page.goto(f"{served.base_url}/ui/tasks/{TASK_ID}")
        expect(page.get_by_role("heading", level=1)).to_have_text(TASK_ID)  # not reset: still projected
    finally:
        context.close()
