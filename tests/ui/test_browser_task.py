"""The task page in a real chromium against a real ``serve``: the player, the cues, the JSON, the buttons.

The task's video output is a real few-second mp4 (ffmpeg's test pattern) on a local static
server that answers Range requests (tests/support/media.py); ``MPS_CDN_DOMAINS`` maps the
output's bucket to that server, so the URL the projection builds is the one the page plays.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

from mps_callback.send import stamp
from tests.support import deliveries
from tests.support.bodies import load_fixture
from tests.support.checks import wait_until
from tests.support.media import generated_video, static_server
from tests.support.projection import live_series
from tests.support.service import Service, start_service

pytestmark = pytest.mark.process

TOKEN = "ui-task-browser-token"
PLAYABLE = load_fixture("ui/WorkflowTask-Transcode-SmartSubtitles.json")
TASK_ID = PLAYABLE["WorkflowTaskEvent"]["TaskId"]
BUCKET = "mps-demo-1250000000"
VIDEO_PATH = "output/episode-12_transcode_100030.mp4"  # the fixture's transcode output
SCREENSHOT = Path(__file__).parents[2] / "docs" / "dashboard-task.png"
MANY = 20_000


@dataclass
class Served:
    service: Service
    media: str

    def url(self, task_id: str = TASK_ID) -> str:
        return f"{self.service.base_url}/ui/tasks/{quote(task_id, safe='')}"


def projected(service: Service, task_id: str) -> bool:
    answer = service.get(f"/v1/tasks/{quote(task_id, safe='')}", headers={"Authorization": f"Bearer {TOKEN}"})
    return answer.status_code == 200


def listed(service: Service, task_id: str) -> bool:
    """Projected, for a TaskId ``/v1/tasks/{id}`` cannot carry (a ``/`` in it): it is in the list."""
    answer = service.get("/v1/tasks?limit=100", headers={"Authorization": f"Bearer {TOKEN}"})
    return any(item["task_id"] == task_id for item in answer.json()["items"])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    media = tmp_path / "media"
    generated_video(media / VIDEO_PATH)
    with static_server(media) as origin:
        service = start_service(
            f"sqlite+aiosqlite:///{tmp_path}/ui.db",
            tmp_path,
            api_token=TOKEN,
            notify_keys="k",
            cdn_domains=f"{BUCKET}={origin}",
        )
        try:
            assert service.post(stamp(PLAYABLE, "k")).status_code == 200
            wait_until(lambda: projected(service, TASK_ID), 20, "the task projected")
            yield Served(service, origin)
        finally:
            service.stop()


def log_in(page: Page, served: Served, target: str) -> None:
    page.goto(target)
    page.get_by_label("API token").fill(TOKEN)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(target)


def viewer_ready(page: Page) -> None:
    expect(page.locator("#subtitle-viewer[data-ready='1']")).to_have_count(1)


def test_clicking_a_cue_seeks_the_video_and_the_playing_cue_is_highlighted(served: Served, page: Page):
    page.set_viewport_size({"width": 1280, "height": 800})
    log_in(page, served, served.url())
    expect(page.get_by_role("heading", level=1)).to_have_text(TASK_ID)
    video = page.locator("video#player")
    expect(video).to_have_attribute("src", f"{served.media}/{VIDEO_PATH}")
    viewer_ready(page)
    assert page.locator("#cue-table").is_hidden()  # the server's table gives way to the viewer
    assert page.evaluate("document.getElementById('player').readyState") == 0  # preload="none": nothing fetched

    page.locator(".cue-row[data-index='2']").click()  # the first seek loads the video
    page.wait_for_function("() => document.getElementById('player').readyState >= 1", timeout=15_000)
    assert 3.5 < page.evaluate("document.getElementById('player').duration") < 4.5
    page.wait_for_function("() => Math.abs(document.getElementById('player').currentTime - 2.0) < 0.1")
    expect(page.locator(".cue-row.active")).to_have_attribute("data-index", "2")

    page.locator(".cue-row[data-index='0']").click()
    page.evaluate("(() => { const p = document.getElementById('player'); p.muted = true; return p.play(); })()")
    expect(page.locator(".cue-row.active[data-index='1']")).to_have_count(1, timeout=10_000)
    playing_at = page.evaluate("document.getElementById('player').currentTime")
    assert 1.0 <= playing_at < 2.0, playing_at
    page.evaluate("document.getElementById('player').pause()")

    if os.environ.get("MPS_SCREENSHOTS"):  # make the docs' picture: MPS_SCREENSHOTS=1 pytest -k clicking_a_cue
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(SCREENSHOT))


def test_seeking_with_the_players_own_controls_highlights_the_cue_then_playing(served: Served, page: Page):
    log_in(page, served, served.url())
    viewer_ready(page)
    page.evaluate("(() => { const p = document.getElementById('player'); p.muted = true; return p.play(); })()")
    page.evaluate("document.getElementById('player').pause()")  # play (the controls' button) loads the video
    page.wait_for_function("() => document.getElementById('player').readyState >= 1", timeout=15_000)
    page.evaluate("document.getElementById('player').currentTime = 3.2")
    expect(page.locator(".cue-row.active")).to_have_attribute("data-index", "3")


def test_the_json_viewer_search_highlights_and_expands_a_match(served: Served, page: Page):
    log_in(page, served, served.url())
    details = page.locator("#notifications details.json").first
    details.locator("summary").click()
    tree = details.locator(".jsontree")
    expect(tree).to_be_visible()  # fetched from the details' link when first opened
    expect(details.locator(".json-link")).to_have_attribute("href", re.compile(r"^/ui/notifications/\d+\.json$"))
    deep = tree.locator(".value", has_text="episode-12_transcode_100030.mp4").first
    expect(deep).to_have_count(0)  # deep in the tree: not even built until its parents are expanded
    details.get_by_label("search the JSON").fill("transcode_100030")
    expect(tree.locator(".match").first).to_be_visible()
    assert tree.locator(".match").count() >= 1
    expect(details.locator(".matches")).to_contain_text("match")
    details.get_by_label("search the JSON").fill("")
    expect(tree.locator(".match")).to_have_count(0)


def test_a_megabyte_body_opens_lazily_and_its_search_finds_a_deep_value(served: Served, page: Page):
    body = copy.deepcopy(PLAYABLE)
    body["WorkflowTaskEvent"]["TaskId"] = "ui-big-body"
    padding = [{"Line": f"{i:06d}" + "y" * 90} for i in range(20_000)]  # 2 MB, kept in the body, never projected
    padding[-1]["Line"] = "the-needle-at-the-end"
    body["WorkflowTaskEvent"]["InputInfo"]["Padding"] = {"Deeper": {"Lines": padding}}
    assert served.service.post(stamp(body, "k")).status_code == 200
    wait_until(lambda: projected(served.service, "ui-big-body"), 20, "the big task projected")
    log_in(page, served, served.url("ui-big-body"))
    details = page.locator("#notifications details.json").first
    details.locator("summary").click()
    tree = details.locator(".jsontree")
    expect(tree).to_be_visible()
    assert tree.locator("li").count() < 200  # the 20,000 lines are not built until their parent opens
    details.get_by_label("search the JSON").fill("needle-at-the")
    expect(tree.locator(".match")).to_have_text('"the-needle-at-the-end"')
    expect(details.locator(".matches")).to_have_text("1 match")
    details.get_by_label("search the JSON").fill("yyyy")
    expect(details.locator(".matches")).to_have_text("first 500 matches shown")
    expect(tree.locator(".match")).to_have_count(500)
    details.get_by_role("button", name="expand all").click()  # bounded too: 20,000 objects are not all opened
    expect(details.locator(".matches")).to_have_text("expanded the first 2000 nodes; search to reach the rest")


@pytest.mark.parametrize("task_id", ["x/../victim", "..", "a/cues.json"])
def test_a_slashed_or_dotted_task_id_opens_from_the_list_and_reprojects_itself(
    served: Served, page: Page, task_id: str
):
    for body in (many_cues("victim", 3), many_cues(task_id, 3)):
        assert served.service.post(stamp(body, "k")).status_code == 200
    wait_until(lambda: listed(served.service, task_id), 20, "the task projected")
    log_in(page, served, served.service.base_url + "/ui/")
    page.locator("table.tasks td.task-id > a").filter(has_text=re.compile("^" + re.escape(task_id) + "$")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(task_id)
    viewer_ready(page)  # its cues came from its own cues URL
    expect(page.locator(".cue-row .cue-text").first).to_have_text("cue 0")
    page_url = page.url
    page.get_by_role("button", name="Reproject this task").click()
    expect(page.get_by_role("status")).to_contain_text("Reprojection started", timeout=20_000)
    expect(page.get_by_role("heading", level=1)).to_have_text(task_id)
    assert page.url.startswith(page_url)


def test_a_dead_delivery_is_retried_with_its_button(served: Served, page: Page):
    row = {"task_id": TASK_ID, "status": "dead", "last_error": "HTTP 502 from the sink"}
    with ThreadPoolExecutor(1) as thread:  # Playwright's loop runs in this thread: the helper's asyncio.run cannot
        [dead] = thread.submit(deliveries.add, served.service.database_url, row).result()
    log_in(page, served, served.url())
    row = page.locator(f"#delivery-{dead}")
    expect(row.locator(".status")).to_have_text("dead")
    row.get_by_role("button", name="Retry").click()
    expect(page).to_have_url(served.url() + "?retried=1#deliveries")
    expect(page.get_by_role("status")).to_contain_text("Delivery made due now")
    expect(page.locator(f"#delivery-{dead} .status")).to_have_text("pending")


def many_cues(task_id: str, count: int) -> dict[str, Any]:
    body = copy.deepcopy(PLAYABLE)
    event = body["WorkflowTaskEvent"]
    event["TaskId"] = task_id
    event["SmartSubtitlesTaskResult"][0]["TransTextTask"]["Output"]["SegmentSet"] = [
        {"StartTimeOffset": i * 0.5, "EndTimeOffset": i * 0.5 + 0.4, "Text": f"cue {i}", "Trans": f"trans {i}"}
        for i in range(count)
    ]
    return body


def test_twenty_thousand_cues_render_and_scroll_with_few_rows_in_the_dom(served: Served, page: Page):
    task_id = "ui-many-cues"
    assert served.service.post(stamp(many_cues(task_id, MANY), "k")).status_code == 200
    wait_until(lambda: projected(served.service, task_id), 60, "20,000 cues projected")
    log_in(page, served, served.url(task_id))
    viewer_ready(page)
    expect(page.locator(".cue-search .muted")).to_have_text(f"{MANY} cues")
    assert page.locator(".cue-row").count() < 100
    page.locator(".cue-viewport").evaluate("(viewport) => { viewport.scrollTop = viewport.scrollHeight; }")
    expect(page.locator(".cue-row", has_text=f"cue {MANY - 1}").first).to_be_visible()
    assert page.locator(".cue-row").count() < 100
    page.get_by_label("find in the cues").fill("cue 12345")
    expect(page.locator(".cue-row.found", has_text="cue 12345").first).to_be_visible()


def test_hostile_text_in_the_json_tree_and_the_cues_stays_text(served: Served, page: Page):
    hostile = "<img src=x onerror=\"document.title='pwned'\"><b>bold</b>"
    bodies = live_series("ui-hostile")
    for body in bodies:
        if body["NotificationType"] == "AiSmartSubtitleResult":
            body["SessionContext"] = hostile
            body["AiSmartSubtitleResultInfo"]["SmartSubtitleResult"][0]["Text"] = hostile
    for body in bodies:
        assert served.service.post(stamp(body, "k")).status_code == 200
    wait_until(lambda: projected(served.service, "ui-hostile"), 20, "the live task projected")
    page.route("https://x.test/**", lambda route: route.fulfill(status=204))  # the review finding's picture
    log_in(page, served, served.url("ui-hostile"))
    viewer_ready(page)
    expect(page.locator(".cue-row .cue-text").first).to_have_text(hostile)
    details = page.locator("#notifications details.json").first
    details.locator("summary").click()
    details.get_by_label("search the JSON").fill("onerror")
    expect(details.locator(".jsontree .match").first).to_be_visible()
    assert page.locator(":is(#header, #subtitles, #notifications) :is(img, b)").count() == 0
    assert page.title() != "pwned"


def test_reproject_with_its_button_and_the_background_projector_brings_the_task_back(served: Served, page: Page):
    log_in(page, served, served.url())
    page.get_by_role("button", name="Reproject this task").click()
    # Either the rebuild is still pending (the waiting page, which reloads itself) or already done.
    expect(page.get_by_role("status")).to_contain_text("Reprojection started", timeout=20_000)
    expect(page).to_have_url(served.url() + "?reprojected=1")
    expect(page.get_by_role("heading", level=1)).to_have_text(TASK_ID)
    viewer_ready(page)
