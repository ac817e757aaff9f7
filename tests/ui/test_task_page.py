"""The task page in process, on every backend: what it shows for tasks of several shapes, what it refuses.

Each test sends MPS's bodies through the callback and projects them, then reads the page as a
browser without JavaScript would: the sections are server-rendered, every value escaped, and
every hostile path or query value answers a 4xx page, never a 500 or a JSON body.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest

from tests.support import deliveries
from tests.support.bodies import SECRET_KEY, load_fixture
from tests.support.pages import (
    FORM,
    PLAYABLE,
    SUBTITLES,
    TOKEN,
    TRANSCODE,
    csrf,
    log_in,
    page_path,
    send,
    task_id_of,
    with_cues,
)
from tests.support.projection import live_series
from tests.support.service import InProcessService

HIGHLIGHT = load_fixture("vod/WorkflowTask-AiAnalysis-HighlightTask.json")
SECTIONS = ("header", "subtasks", "outputs", "subtitles", "segments", "notifications", "deliveries")


@pytest.fixture
def service(database_url: str, tmp_path: Path) -> Iterator[InProcessService]:
    with InProcessService(database_url, tmp_path, notify_keys="k") as running:
        yield running


def cue_table(html: str) -> str:
    """The server-rendered cue table (the raw JSON further down holds every cue too)."""
    start = html.index('id="cue-table"')
    return html[start : html.index("</table>", start)]


# ---------------------------------------------------------------- what it shows


SHAPES = {
    "smart subtitles": (
        [SUBTITLES],
        task_id_of(SUBTITLES),
        ["subtitle line 0 of SegmentSet", "translated line 0", "TransTextTask", "source .vtt", "1280\u00d7720"],
    ),
    "transcode": ([TRANSCODE], task_id_of(TRANSCODE), ["<video controls", "path-0.mp4", "TranscodeTask", "10.0 MiB"]),
    "ai analysis": ([HIGHLIGHT], task_id_of(HIGHLIGHT), ["HighlightTask", '<svg class="lane-track"', "<rect x="]),
    "live series": (live_series("live-ui-1"), "live-ui-1", ["line 3", "trans 3", "AiReviewResult", "user-7", "porn"]),
    "playable": (
        [PLAYABLE],
        task_id_of(PLAYABLE),
        ['<video id="player"', "Thanks for watching", "<dd>h264</dd>", "0:03.000"],
    ),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_every_section_is_server_rendered_for_tasks_of_several_shapes(service: InProcessService, shape: str):
    bodies, task_id, expected = SHAPES[shape]
    send(service, *bodies)
    answer = service.get(page_path(task_id))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    for section in SECTIONS:
        assert f'<section id="{section}"' in answer.text
    for text in expected:
        assert text in answer.text, text
    assert f"<h1>{task_id}</h1>" in answer.text
    assert answer.text.count('<details class="json" data-src=') == len(bodies)  # a link to each raw JSON
    assert SECRET_KEY not in answer.text  # the journal's redacted copy is what is shown


def test_a_failed_task_says_which_subtask_failed_and_why(service: InProcessService):
    body = copy.deepcopy(SUBTITLES)
    body["WorkflowTaskEvent"]["TaskId"] = "failed-1"
    task = body["WorkflowTaskEvent"]["SmartSubtitlesTaskResult"][0]["TransTextTask"]
    task.update(
        Status="FAIL", ErrCode=70014, ErrCodeExt="LanguageNotSupported", Message="speech language not supported"
    )
    send(service, body)
    text = service.get(page_path("failed-1")).text
    assert '<span class="status failed">failed</span>' in text
    why = text[text.index('id="why"') :]
    assert "70014 LanguageNotSupported: speech language not supported" in why[: why.index("</div>")]


def test_the_viewer_pages_its_cues_without_javascript_and_gives_them_all_as_json(service: InProcessService):
    send(service, with_cues("many-cues", 450))
    first = service.get(page_path("many-cues")).text
    assert "cues 1\u2013200 of 450" in first
    assert "cue 199<" in cue_table(first) and "cue 200<" not in cue_table(first)
    last = service.get(page_path("many-cues") + "?cues=400").text
    assert "cue 449<" in cue_table(last) and "cue 399<" not in cue_table(last) and "next cues" not in last
    cues = service.get("/ui/cues.json?task=many-cues")
    assert cues.status_code == 200 and cues.headers["content-security-policy"]
    rows = cues.json()["cues"]
    assert len(rows) == 450 and rows[7] == [7.0, 7.8, "cue 7", "trans 7"]


def test_segment_tables_page_with_the_api_cursor(service: InProcessService):
    body = copy.deepcopy(HIGHLIGHT)
    send(service, body)
    task_id = task_id_of(body)
    text = service.get(page_path(task_id)).text
    kinds = re.findall(r'\?kind=([^"#&]+)#segments', text)
    assert kinds, "a link per segment kind"
    answer = service.get(page_path(task_id) + f"?kind={kinds[-1]}")
    assert answer.status_code == 200 and 'class="segments"' in answer.text


def test_subtitle_exports_are_served_from_the_page(service: InProcessService):
    send(service, SUBTITLES)
    task = "task=" + quote(task_id_of(SUBTITLES), safe="")
    vtt = service.get(f"/ui/subtitles.vtt?{task}")
    assert vtt.status_code == 200 and vtt.text.startswith("WEBVTT") and "subtitle line 1 of SegmentSet" in vtt.text
    srt = service.get(f"/ui/subtitles.srt?{task}&lang=translation")
    assert srt.status_code == 200 and "translated line 1" in srt.text
    assert 'filename="' in srt.headers["content-disposition"]
    assert srt.headers["x-content-type-options"] == "nosniff"


# ---------------------------------------------------------------- hostile values


def test_nothing_from_a_notification_runs_in_the_page(service: InProcessService):
    hostile = "<script>alert('x')</script>\"'&"
    body = copy.deepcopy(TRANSCODE)
    body["WorkflowTaskEvent"]["TaskId"] = "t-" + hostile
    body["SessionContext"] = "<img src=x onerror=alert(1)>"
    output = body["WorkflowTaskEvent"]["MediaProcessResultSet"][0]["TranscodeTask"]["Output"]
    output["UrlSet"] = ["javascript:alert(1)//x.mp4"]
    send(service, body)
    answer = service.get(page_path("t-" + hostile))
    assert answer.status_code == 200
    assert "<script>alert" not in answer.text and "<img src=x" not in answer.text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&#34;&#39;&amp;" in answer.text
    assert not re.search(r'(href|src)="javascript:', answer.text)
    assert "style=" not in answer.text  # the CSP forbids it: geometry comes from classes, SVG attributes and JS


@pytest.mark.parametrize(
    "task_id",
    ["x" * 5000, "\x00", "a\x00b", "<script>alert(1)</script>", "任务-1", "🎬", "\udcff", "'\"", "..%2F..%2Fetc"],
    ids=["long", "nul", "inner-nul", "script", "cjk", "emoji", "lone-surrogate", "quotes", "dots"],
)
def test_a_hostile_or_unknown_task_id_is_a_404_page(service: InProcessService, task_id: str):
    quoted = quote(task_id, safe="", errors="surrogatepass")
    path = "/ui/tasks/" + quoted
    for url in (path, f"/ui/tasks/?task={quoted}", f"/ui/cues.json?task={quoted}", f"/ui/subtitles.vtt?task={quoted}"):
        answer = service.get(url)
        assert answer.status_code == 404, (url, answer.text[:300])
        if "cues.json" not in url:
            assert answer.headers["content-type"].startswith("text/html")
            assert "<script>alert" not in answer.text
    assert "no task" in service.get(path).text.lower() or "no such task" in service.get(path).text


@pytest.mark.parametrize(
    "query",
    [
        "cues=abc",
        "cues=-1",
        "cues=99999999999999999999999",
        "kind=nothing",
        "cursor=garbage",
        "subtask=zzz",
        "notifications=garbage",
        "cursor=" + "a" * 600,
        "kind=%00",
    ],
)
def test_a_bad_query_value_is_a_4xx_page_saying_why(service: InProcessService, query: str):
    send(service, SUBTITLES, HIGHLIGHT)
    answer = service.get(page_path(task_id_of(HIGHLIGHT)) + "?" + query)
    assert 400 <= answer.status_code < 500
    assert answer.headers["content-type"].startswith("text/html")
    assert 'class="problem"' in answer.text


def test_an_unknown_export_format_or_language_is_a_4xx_page(service: InProcessService):
    send(service, SUBTITLES)
    task = "task=" + quote(task_id_of(SUBTITLES), safe="")
    assert service.get(f"/ui/subtitles.ass?{task}").status_code == 404
    assert service.get(f"/ui/subtitles.vtt?{task}&lang=klingon").status_code == 400
    assert service.get(f"/ui/subtitles.vtt?{task}&subtask=nope").status_code == 404


# ---------------------------------------------------------------- actions


def test_actions_need_the_csrf_token(service: InProcessService):
    send(service, SUBTITLES)
    task_id = task_id_of(SUBTITLES)
    [delivery] = deliveries.add(service.database_url, {"task_id": task_id, "status": "dead"})
    service.get(page_path(task_id))  # the CSRF cookie is set; the form field is what is missing
    for path in ("/ui/reproject", f"/ui/deliveries/{delivery}/retry"):
        assert service.post(urlencode({"task": task_id}).encode(), path, headers=FORM).status_code == 403
        forged = urlencode({"csrf": "0" * 32, "task": task_id}).encode()
        assert service.post(forged, path, headers=FORM).status_code == 403


def test_retry_makes_a_dead_delivery_due_and_refuses_a_delivered_one(service: InProcessService):
    send(service, SUBTITLES)
    task_id = task_id_of(SUBTITLES)
    dead, delivered = deliveries.add(
        service.database_url,
        {"task_id": task_id, "status": "dead", "attempts": 6, "last_error": "HTTP 500 from the sink"},
        {"task_id": task_id, "status": "delivered", "attempts": 1},
    )
    token = csrf(service, task_id)
    page = service.get(page_path(task_id)).text
    assert "HTTP 500 from the sink" in page and f'action="/ui/deliveries/{dead}/retry"' in page

    answer = service.post(urlencode({"csrf": token}).encode(), f"/ui/deliveries/{dead}/retry", headers=FORM)
    assert answer.status_code == 303 and answer.headers["location"] == page_path(task_id) + "?retried=1#deliveries"
    after = service.get(answer.headers["location"]).text
    assert "Delivery made due now" in after
    row = after[after.index(f'id="delivery-{dead}"') :]
    assert '<span class="status pending">pending</span>' in row[: row.index("</tr>")]

    refused = service.post(urlencode({"csrf": token}).encode(), f"/ui/deliveries/{delivered}/retry", headers=FORM)
    assert refused.status_code == 409 and "only pending or dead ones are retried" in refused.text
    for bad in ("0", "abc", "99999999999999999999999", "12345"):
        answer = service.post(urlencode({"csrf": token}).encode(), f"/ui/deliveries/{bad}/retry", headers=FORM)
        assert answer.status_code == 404 and 'class="problem"' in answer.text


def test_reproject_resets_the_task_and_the_projector_rebuilds_it(service: InProcessService):
    send(service, SUBTITLES)
    task_id = task_id_of(SUBTITLES)
    token = csrf(service, task_id)
    answer = service.post(urlencode({"csrf": token, "task": task_id}).encode(), "/ui/reproject", headers=FORM)
    assert answer.status_code == 303 and answer.headers["location"] == page_path(task_id) + "?reprojected=1"

    waiting = service.get(answer.headers["location"])
    assert waiting.status_code == 202 and "not projected yet" in waiting.text
    assert '<meta http-equiv="refresh"' in waiting.text and "rebuilding this task" in waiting.text
    assert service.project() == 1
    back = service.get(answer.headers["location"])
    assert back.status_code == 200 and "Reprojection started" in back.text and "subtitle line 1" in back.text


def test_reproject_of_an_unknown_task_is_a_404_page(service: InProcessService):
    send(service, SUBTITLES)
    token = csrf(service, task_id_of(SUBTITLES))
    answer = service.post(urlencode({"csrf": token, "task": "nope"}).encode(), "/ui/reproject", headers=FORM)
    assert answer.status_code == 404 and "no task nope" in answer.text


def test_the_page_and_its_exports_need_the_login(tmp_path: Path):
    url = f"sqlite+aiosqlite:///{tmp_path}/ui.db"
    with InProcessService(url, tmp_path, api_token=TOKEN, notify_keys="k") as guarded:
        send(guarded, SUBTITLES)
        task = "?task=" + quote(task_id_of(SUBTITLES), safe="")
        paths = [page_path(task_id_of(SUBTITLES)), "/ui/cues.json" + task, "/ui/subtitles.vtt" + task]
        for path in paths:
            assert guarded.get(path).status_code == 303
        log_in(guarded)
        for path in paths:
            assert guarded.get(path).status_code == 200
