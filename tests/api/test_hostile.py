"""Hostile input to the query API, on every backend: a 4xx with a reason or a right answer, never a 500.

Subtitle files are read back with real parsers (webvtt-py, srt): the cues MPS sent, with their text.
"""

from __future__ import annotations

import copy
import html
import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
import srt
import webvtt

from mps_callback.api import cursor as cursors
from mps_callback.api.subtitle_files import Line, render
from mps_callback.send import stamp
from tests.support.bodies import load_fixture
from tests.support.service import InProcessService, free_port

TOKEN = {"Authorization": "Bearer hostile-token"}
SUBTITLES = load_fixture("vod/WorkflowTask-SmartSubtitles-TransTextTask.json")

#: Cue texts that broke the files, and the text a parser must read back (line breaks of every
#: kind become one LF, blank lines go, each line is stripped).
HOSTILE = {
    "a --> b": "a --> b",
    "--->": "--->",  # the one-pass replacement of "-->" by "->" left a "-->"
    "x - > y": "x - > y",
    "7\n00:00:05.000 --> 00:00:06.000\nforged cue": "7\n00:00:05.000 --> 00:00:06.000\nforged cue",
    "one\n\n\ntwo\r\n\r\nthree": "one\ntwo\nthree",
    "&amp; <b>bold</b> a<b & c>d": "&amp; <b>bold</b> a<b & c>d",
    "l1\u2028l2\u2029l3\x85l4\x0bl5\x0cl6": "l1\nl2\nl3\nl4\nl5\nl6",
    "ctl\x01\x07\x1b[31m\x7f\x9f end": "ctl\x01\x07\x1b[31m\x7f\x9f end",
    "WEBVTT": "WEBVTT",
    "NOTE this is text": "NOTE this is text",
    "12\n00:00:01,000 tail": "12\n00:00:01,000 tail",
}
#: What SubRip, which has no escaping, makes of the timing-line arrows: ``->``.
SRT_ARROWS = {
    "a --> b": "a -> b",
    "--->": "->",
    "x - > y": "x -> y",
    "7\n00:00:05.000 --> 00:00:06.000\nforged cue": "7\n00:00:05.000 -> 00:00:06.000\nforged cue",
}

HOSTILE_ID = "2400002-hostile-cues-1"
NON_LATIN1_ID = "任务-字幕-1 «ü»"
HUGE_END_ID = "2400002-huge-end-1"


def subtitle_task(task_id: str, cues: list[tuple[float, float, str]]) -> dict[str, Any]:
    """The SmartSubtitles fixture as another task, with these (start, end, text) lines."""
    body = copy.deepcopy(SUBTITLES)
    body["WorkflowTaskEvent"]["TaskId"] = task_id
    output = body["WorkflowTaskEvent"]["SmartSubtitlesTaskResult"][0]["TransTextTask"]["Output"]
    output["SegmentSet"] = [
        {"StartTimeOffset": start, "EndTimeOffset": end, "Text": text, "Trans": f"t{index}"}
        for index, (start, end, text) in enumerate(cues)
    ]
    return body


HOSTILE_CUES = [(float(index), index + 0.5, text) for index, text in enumerate(HOSTILE)]


@pytest.fixture(scope="module")
def service(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessService]:
    with InProcessService(
        module_database_url, tmp_path_factory.mktemp("hostile"), notify_keys="k", api_token="hostile-token"
    ) as running:
        bodies = [
            subtitle_task(HOSTILE_ID, HOSTILE_CUES),
            subtitle_task(NON_LATIN1_ID, [(1.0, 2.0, "你好")]),
            subtitle_task(HUGE_END_ID, [(1.0, 2.0, "first"), (3.0, 1e308, "forever")]),
        ]
        for body in bodies:
            assert running.post(stamp(body, "k")).status_code == 200
        assert running.project() == len(bodies)
        yield running
    assert '"status":5' not in running.logs()


def vtt_cues(text: str) -> list[tuple[str, str, str]]:
    return [(cue.start, cue.end, html.unescape(cue.text)) for cue in webvtt.from_buffer(io.StringIO(text))]


def srt_cues(text: str) -> list[tuple[timedelta, timedelta, str]]:
    return [(cue.start, cue.end, cue.content) for cue in srt.parse(text)]


def test_hostile_cue_texts_stay_their_cues_in_webvtt(service: InProcessService):
    answer = service.get(f"/v1/tasks/{HOSTILE_ID}/subtitles?format=vtt", headers=TOKEN)
    assert answer.status_code == 200
    expected = [
        (f"00:00:{index:02d}.000", f"00:00:{index:02d}.500", HOSTILE[text])
        for index, (_, _, text) in enumerate(HOSTILE_CUES)
    ]
    assert vtt_cues(answer.text) == expected
    assert "-->" not in answer.text.replace(" --> ", "")  # only timing lines hold an arrow


def test_hostile_cue_texts_stay_their_cues_in_srt(service: InProcessService):
    answer = service.get(f"/v1/tasks/{HOSTILE_ID}/subtitles?format=srt", headers=TOKEN)
    assert answer.status_code == 200
    expected = [
        (timedelta(seconds=index), timedelta(seconds=index + 0.5), SRT_ARROWS.get(text, HOSTILE[text]))
        for index, (_, _, text) in enumerate(HOSTILE_CUES)
    ]
    assert srt_cues(answer.text) == expected
    assert "\u2028" not in answer.text and "\u2029" not in answer.text


def test_non_latin1_task_id_gets_an_rfc6266_file_name(service: InProcessService):
    answer = service.get(f"/v1/tasks/{quote(NON_LATIN1_ID)}/subtitles?format=srt", headers=TOKEN)
    assert answer.status_code == 200, answer.text
    disposition = answer.headers["content-disposition"]
    assert disposition.isascii()
    assert 'filename="__-__-1____.source.srt"' in disposition
    exact = disposition.split("filename*=UTF-8''")[1]
    assert unquote(exact) == f"{NON_LATIN1_ID}.source.srt"
    assert srt_cues(answer.text) == [(timedelta(seconds=1), timedelta(seconds=2), "你好")]


def test_an_end_of_1e308_is_clamped_not_a_500(service: InProcessService):
    vtt = service.get(f"/v1/tasks/{HUGE_END_ID}/subtitles", headers=TOKEN)
    assert vtt.status_code == 200
    assert [(start, end) for start, end, _ in vtt_cues(vtt.text)] == [
        ("00:00:01.000", "00:00:02.000"),
        ("00:00:03.000", "99:59:59.999"),
    ]
    srt_file = service.get(f"/v1/tasks/{HUGE_END_ID}/subtitles?format=srt", headers=TOKEN)
    assert srt_cues(srt_file.text)[1] == (
        timedelta(seconds=3),
        timedelta(hours=99, minutes=59, seconds=59.999),
        "forever",
    )
    segments = service.get(f"/v1/tasks/{HUGE_END_ID}/segments?kind=subtitle", headers=TOKEN).json()["items"]
    assert [segment["end"] for segment in segments] == [2.0, 1e308]


OUT_OF_RANGE = ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00%2B23:59"]


@pytest.mark.parametrize("instant", OUT_OF_RANGE)
@pytest.mark.parametrize("name", ["since", "until"])
def test_instants_past_utc_range_answer_422(service: InProcessService, name: str, instant: str):
    answer = service.get(f"/v1/tasks?{name}={instant}", headers=TOKEN)
    assert answer.status_code == 422, answer.text
    assert "out of range" in answer.text


@pytest.mark.parametrize(
    ("instant", "status"),
    [("9999-12-31T23:59:59-23:59", 400), ("0001-01-01T00:00:00+23:59", 400), ("9999-12-31T23:59:59", 200)],
)
def test_a_cursor_past_utc_range_answers_400(service: InProcessService, instant: str, status: int):
    forged = cursors.encode("tasks", instant, "x")
    assert service.get(f"/v1/tasks?cursor={forged}", headers=TOKEN).status_code == status


def test_the_edges_of_the_range_are_a_right_answer(service: InProcessService):
    everything = service.get("/v1/tasks?since=0001-01-01T00:00:00Z&until=9999-12-31T23:59:59.999999Z", headers=TOKEN)
    assert everything.status_code == 200 and len(everything.json()["items"]) == 3


NUL_PATHS = [
    "/v1/tasks/a%00b",
    "/v1/tasks/a%00b/segments",
    "/v1/tasks/a%00b/notifications",
    "/v1/tasks/a%00b/subtitles",
]
NUL_QUERIES = [
    "/v1/tasks?q=a%00b",
    "/v1/tasks?type=Process%00Eof",
    "/v1/tasks?event_type=%00",
    "/v1/tasks?cursor=%00",
    "/v1/tasks?status=%00",
    f"/v1/tasks/{HOSTILE_ID}/segments?kind=a.%00",
    f"/v1/tasks/{HOSTILE_ID}/subtitles?subtask=%00",
    "/v1/tasks?x%00=1",
]


@pytest.mark.parametrize("path", NUL_PATHS)
def test_nul_in_a_path_answers_404(service: InProcessService, path: str):
    answer = service.get(path, headers=TOKEN)
    assert answer.status_code == 404 and "NUL" in answer.json()["detail"]


@pytest.mark.parametrize("path", NUL_QUERIES)
def test_nul_in_a_query_answers_422(service: InProcessService, path: str):
    answer = service.get(path, headers=TOKEN)
    assert answer.status_code == 422, answer.text


FORGED_CURSORS = [
    ("/v1/tasks", cursors.encode("tasks", "2024-01-01T00:00:00+00:00", "a\x00b")),
    (f"/v1/tasks/{HOSTILE_ID}/notifications", cursors.encode("notifications", 2**63)),
    (f"/v1/tasks/{HOSTILE_ID}/segments", cursors.encode("segments", 1.0, 2**64 - 1)),
    (f"/v1/tasks/{HOSTILE_ID}/segments", cursors.encode("segments", "1.0", 1)),
    (f"/v1/tasks/{HOSTILE_ID}/segments", cursors.encode("notifications", 1)),  # another list's cursor
    ("/v1/tasks", "x" * 5000),
    # a NULL where the list's key column never is (only a segment's start may be)
    ("/v1/tasks", cursors.encode("tasks", None, None)),
    ("/v1/tasks", cursors.encode("tasks", None, "a")),
    ("/v1/tasks", cursors.encode("tasks", "2026-11-24T22:51:38", None)),
    (f"/v1/tasks/{HOSTILE_ID}/notifications", cursors.encode("notifications", None)),
    (f"/v1/tasks/{HOSTILE_ID}/segments", cursors.encode("segments", 1.0, None)),
    ("/v1/deliveries", cursors.encode("deliveries", None)),
]


@pytest.mark.parametrize(("path", "forged"), FORGED_CURSORS)
def test_a_forged_cursor_answers_4xx(service: InProcessService, path: str, forged: str):
    assert service.get(f"{path}?cursor={forged}", headers=TOKEN).status_code in (400, 422)


def test_render_leaves_out_lines_no_clock_reaches():
    assert render(
        [Line(1e308, None, "never"), Line(float("inf"), None, "never"), Line(1.0, float("nan"), "x")], "srt"
    ) == ("1\n00:00:01,000 --> 00:00:03,000\nx\n")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:{port}/test",
        "mysql://root@127.0.0.1:{port}/test",
        "sqlite:////nonexistent-{port}/journal.db",
    ],
)
def test_while_the_database_is_down_the_query_api_answers_json_503(tmp_path: Path, url: str):
    with InProcessService(url.format(port=free_port()), tmp_path, migrate=False, api_token="hostile-token") as service:
        for path in [
            "/v1/tasks",
            "/v1/tasks/x",
            "/v1/tasks/x/segments",
            "/v1/tasks/x/notifications",
            "/v1/tasks/x/subtitles",
            "/v1/notifications/1",
        ]:
            answer = service.get(path, headers=TOKEN)
            assert answer.status_code == 503, (path, answer.text)
            assert answer.headers["content-type"] == "application/json"
            assert answer.json()["detail"].startswith("database unavailable: ") and answer.headers["retry-after"]
