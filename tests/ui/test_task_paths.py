"""TaskIds a URL path mangles, and what the task page carries (issue 12's review), in process.

A TaskId is hostile text: ``x/../victim`` must not lead the dashboard's links or its
Reproject button to another task, ``a/cues.json`` must still open, and a megabyte body
must not be inlined in the page. Links are resolved as a browser resolves them.
"""

from __future__ import annotations

import copy
import html
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urljoin, urlsplit

import pytest

from tests.support.pages import FORM, PLAYABLE, SUBTITLES, TOKEN, TRANSCODE, csrf, log_in, send, task_id_of, with_cues
from tests.support.service import InProcessService

ORIGIN = "http://mps-callback.test"
HOSTILE_IDS = ["x/../victim", "../../health", "a%2Fb/../c", "..", ".", "q?cues=1#x&y"]
#: Ids that end as the old data routes did: each must open as a page.
ROUTE_LIKE_IDS = ["a/cues.json", "a/subtitles/vtt", "a/reproject", "victim/cues.json"]


@pytest.fixture
def service(tmp_path: Path) -> Iterator[InProcessService]:
    with InProcessService(f"sqlite+aiosqlite:///{tmp_path}/ui.db", tmp_path, notify_keys="k") as running:
        yield running


def browser_join(page_url: str, href: str) -> str:
    """``href`` resolved as a browser does: the URL standard takes ``%2e`` for ``.`` in a dot segment."""
    parts = href.split("?", 1)
    segments = [re.sub("(?i)%2e", ".", s) if re.fullmatch("(?i)(\\.|%2e)+", s) else s for s in parts[0].split("/")]
    return urljoin(page_url, "/".join(segments) + ("?" + parts[1] if len(parts) > 1 else ""))


def local(url: str) -> str:
    """The path and query of a URL on the service (what the test client requests)."""
    assert url.startswith(ORIGIN + "/"), url
    return url[len(ORIGIN) :]


def list_link(service: InProcessService, task_id: str) -> str:
    """The tasks list's link to ``task_id``, resolved against the list's URL."""
    text = service.get("/ui/").text
    links = re.findall(r'<td class="task-id"><a href="([^"]*)">([^<]*)</a>', text)
    [href] = [html.unescape(href) for href, shown in links if html.unescape(shown) == task_id]
    return browser_join(ORIGIN + "/ui/", href)


def attribute(text: str, pattern: str) -> list[str]:
    return [html.unescape(value) for value in re.findall(pattern, text)]


def task_of(url: str) -> str:
    """The TaskId a data URL names (its ``task`` query value)."""
    [task_id] = parse_qs(urlsplit(url).query)["task"]
    return task_id


def victim_projected(service: InProcessService) -> bool:
    return service.get("/ui/tasks/victim").status_code == 200


# ---------------------------------------------------------------- bug 1: ids with /, .., %


@pytest.mark.parametrize("task_id", HOSTILE_IDS)
def test_every_link_of_a_task_with_a_slashed_id_leads_to_that_task(service: InProcessService, task_id: str):
    send(service, with_cues("victim", 3), with_cues(task_id, 3))
    page_url = list_link(service, task_id)
    page = service.get(local(page_url))
    assert page.status_code == 200 and f"<h1>{html.escape(task_id)}</h1>" in page.text

    [action] = attribute(page.text, r'<form method="post" action="([^"]*)" class="inline">\s*<input[^>]*>\s*<input')
    [form_task] = attribute(page.text, r'<input type="hidden" name="task" value="([^"]*)">')
    assert form_task == task_id and local(browser_join(page_url, action)) == "/ui/reproject"
    [cues_url] = attribute(page.text, r'data-cues="([^"]*)"')
    cues = service.get(local(browser_join(page_url, cues_url)))
    assert task_of(cues_url) == task_id and cues.json()["cues"][2][2] == "cue 2"
    exports = attribute(page.text, r'class="download" href="([^"]*)"')
    assert len(exports) == 6
    for export in exports:
        assert task_of(browser_join(page_url, export)) == task_id
        assert service.get(local(browser_join(page_url, export))).status_code == 200
    for pager in attribute(page.text, r'<a href="([^"]*)#subtitles"'):  # the cue pager and tracks: the same page
        assert service.get(local(browser_join(page_url, pager))).text.count(f"<h1>{html.escape(task_id)}</h1>") == 1


@pytest.mark.parametrize("task_id", ["x/../victim", "../../victim", ".."])
def test_the_pages_reproject_form_resets_only_that_task(service: InProcessService, task_id: str):
    send(service, with_cues("victim", 3), with_cues(task_id, 3))
    page_url = list_link(service, task_id)
    page = service.get(local(page_url)).text
    [action] = attribute(page, r'<form method="post" action="([^"]*)" class="inline">\s*<input[^>]*>\s*<input')
    fields = dict(re.findall(r'<input type="hidden" name="(csrf|task)" value="([^"]*)">', page)[:2])
    fields = {name: html.unescape(value) for name, value in fields.items()}
    answer = service.post(urlencode(fields).encode(), local(browser_join(page_url, action)), headers=FORM)
    assert answer.status_code == 303
    assert browser_join(page_url, answer.headers["location"]).split("?")[0] == page_url.split("?")[0]
    assert victim_projected(service)  # never the other task
    assert service.get(local(page_url)).status_code == 202  # this one is being rebuilt
    assert service.project() == 1 and service.get(local(page_url)).status_code == 200


def test_reproject_without_a_task_is_a_400_page(service: InProcessService):
    send(service, SUBTITLES)
    token = csrf(service, task_id_of(SUBTITLES))
    answer = service.post(urlencode({"csrf": token}).encode(), "/ui/reproject", headers=FORM)
    assert answer.status_code == 400 and "form field task is missing" in answer.text


# ---------------------------------------------------------------- bug 2: ids ending as a data route did


@pytest.mark.parametrize("task_id", ROUTE_LIKE_IDS)
def test_a_task_whose_id_ends_like_a_data_route_opens(service: InProcessService, task_id: str):
    send(service, with_cues(task_id, 3))
    page = service.get(local(list_link(service, task_id)))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f"<h1>{task_id}</h1>" in page.text


@pytest.mark.parametrize("path", ["/ui/cues.json", "/ui/subtitles.vtt", "/ui/cues.json?task=", "/ui/tasks/"])
def test_a_data_route_or_page_without_its_task_is_a_400(service: InProcessService, path: str):
    answer = service.get(path)
    assert answer.status_code == 400 and "query parameter task is missing" in answer.text


# ---------------------------------------------------------------- bug 3: the bodies are links, not inlined


def big(task_id: str, size: int) -> dict[str, Any]:
    body = copy.deepcopy(TRANSCODE)
    body["WorkflowTaskEvent"]["TaskId"] = task_id
    padding = [f"{i:06d}" + "y" * 100 for i in range(size // 110)]
    body["WorkflowTaskEvent"]["InputInfo"]["CosInputInfo"]["Padding"] = padding  # kept whole, never projected
    return body


def test_a_megabyte_body_is_a_link_on_the_page_and_served_as_json(service: InProcessService):
    send(service, big("big-1", 2_000_000))
    page = service.get("/ui/tasks/big-1")
    assert page.status_code == 200 and len(page.content) < 200_000, len(page.content)
    [link] = re.findall(r'<details class="json" data-src="(/ui/notifications/\d+\.json)">', page.text)
    assert f'<a class="json-link" href="{link}">' in page.text  # readable without JavaScript
    answer = service.get(link)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert answer.headers["content-security-policy"] and answer.headers["x-content-type-options"] == "nosniff"
    assert len(answer.json()["WorkflowTaskEvent"]["InputInfo"]["CosInputInfo"]["Padding"]) == 2_000_000 // 110


@pytest.mark.parametrize("notification", ["0", "abc", "99999999999999999999999", "12345", "-1"])
def test_an_unknown_notification_json_is_a_404(service: InProcessService, notification: str):
    answer = service.get(f"/ui/notifications/{quote(notification)}.json")
    assert answer.status_code == 404 and "notification" in answer.json()["detail"]


def test_the_notification_json_needs_the_login(tmp_path: Path):
    with InProcessService(f"sqlite+aiosqlite:///{tmp_path}/ui.db", tmp_path, api_token=TOKEN, notify_keys="k") as svc:
        send(svc, SUBTITLES)
        assert svc.get("/ui/notifications/1.json").status_code == 303
        log_in(svc)
        assert svc.get("/ui/notifications/1.json").status_code == 200


# ---------------------------------------------------------------- small ones


def test_players_load_nothing_and_previews_send_no_referrer(service: InProcessService):
    send(service, PLAYABLE)
    text = service.get("/ui/tasks/" + quote(task_id_of(PLAYABLE), safe="")).text
    players = re.findall(r"<(?:video|audio)[^>]*>", text)
    assert players and all('preload="none"' in player for player in players)
    for image in re.findall(r"<img[^>]*>", text):
        assert 'loading="lazy"' in image and 'referrerpolicy="no-referrer"' in image


def test_a_wrong_token_waits_before_its_401(tmp_path: Path):
    with InProcessService(f"sqlite+aiosqlite:///{tmp_path}/ui.db", tmp_path, api_token=TOKEN) as guarded:
        started = time.monotonic()
        answer = log_in(guarded, token="not-the-token")
        assert answer.status_code == 401
        assert time.monotonic() - started >= 0.9  # loosely: the delay is a second
