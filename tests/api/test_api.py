"""The query API on the real service, on every backend."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from mps_callback.api import tasks as tasks_api
from mps_callback.send import stamp
from mps_callback.store.engine import create_engine
from tests.support.bodies import load_fixture
from tests.support.db import run
from tests.support.projection import live_series, processing_version
from tests.support.service import InProcessService
from tests.support.task_types import ask_both_ways

TOKEN = {"Authorization": "Bearer api-secret-1"}
TRANSCODE = load_fixture("examples/doc-vod-WorkflowTask-transcode.json")
TRANSCODE_ID = TRANSCODE["WorkflowTaskEvent"]["TaskId"]
SUBTITLES = load_fixture("vod/WorkflowTask-SmartSubtitles-TransTextTask.json")
SUBTITLES_ID = SUBTITLES["WorkflowTaskEvent"]["TaskId"]
DELOGO = load_fixture("vod/WorkflowTask-AiAnalysis-DeLogoTask.json")
LIVE_ID = "2400002-procedure-live-api-1"


@pytest.fixture(scope="module")
def service(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessService]:
    with InProcessService(
        module_database_url, tmp_path_factory.mktemp("api"), notify_keys="k", api_token="api-secret-1"
    ) as running:
        bodies = [processing_version(TRANSCODE), TRANSCODE, SUBTITLES, DELOGO, *live_series(LIVE_ID)]
        for body in bodies:
            assert running.post(stamp(body, "k")).status_code == 200
        assert running.project() == len(bodies)
        yield running


@pytest.mark.parametrize(
    "path",
    [
        "/v1/tasks",
        f"/v1/tasks/{TRANSCODE_ID}",
        f"/v1/tasks/{TRANSCODE_ID}/notifications",
        f"/v1/tasks/{SUBTITLES_ID}/subtitles",
        f"/v1/tasks/{SUBTITLES_ID}/segments",
        "/v1/notifications/1",
    ],
)
def test_query_routes_need_the_bearer_token(service: InProcessService, path: str):
    assert service.get(path).status_code == 401
    assert service.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert service.get(path, headers=TOKEN).status_code == 200


def test_task_detail_has_subtasks_outputs_and_counts(service: InProcessService):
    task = service.get(f"/v1/tasks/{TRANSCODE_ID}", headers=TOKEN).json()
    assert (task["kind"], task["event_type"], task["status"], task["failed"]) == ("vod", "WorkflowTask", "FINISH", True)
    assert task["notification_count"] == 2 and task["video_name"] == "dianping2.mp4"
    families = {s["family"]: s for s in task["subtasks"]}
    assert set(families) == {"TranscodeTask", "AnimatedGraphicTask", "SnapshotByTimeOffsetTask", "ImageSpriteTask"}
    assert (families["AnimatedGraphicTask"]["status"], families["AnimatedGraphicTask"]["err_code"]) == ("FAIL", 30010)
    assert families["TranscodeTask"]["output"]["Path"] == "/dasda/dianping2_transcode_10.mp4"
    transcode = next(o for o in task["outputs"] if o["subtask"] == "TranscodeTask")
    # Tencent's example masks its bucket (gztest-125****654): not a bucket name, so no URL, bucket and path kept
    assert transcode["url"] is None and transcode["path"] == "/dasda/dianping2_transcode_10.mp4"
    assert (transcode["kind"], transcode["storage"], transcode["role"]) == ("video", "cos", "main")
    assert task["segment_counts"] == {"snapshot": 1}


def test_live_task_detail(service: InProcessService):
    task = service.get(f"/v1/tasks/{LIVE_ID}", headers=TOKEN).json()
    assert (task["kind"], task["status"], task["failed"], task["session_context"]) == (
        "live",
        "FINISH",
        False,
        "user-7",
    )
    assert task["segment_counts"] == {"subtitle": 4, "review": 1}
    assert {s["family"] for s in task["subtasks"]} == {"AiSmartSubtitleResult", "ImagePorn", "ProcessEof"}


def test_filters(service: InProcessService):
    def ids(query: str) -> set[str]:
        return {t["task_id"] for t in service.get(f"/v1/tasks?{query}", headers=TOKEN).json()["items"]}

    delogo_id = DELOGO["WorkflowTaskEvent"]["TaskId"]
    assert ids("status=failed") == {TRANSCODE_ID}
    assert ids("status=FINISH") == {TRANSCODE_ID, SUBTITLES_ID, delogo_id, LIVE_ID}
    assert ids("kind=live") == {LIVE_ID}
    assert ids("event_type=WorkflowTask") == {TRANSCODE_ID, SUBTITLES_ID, delogo_id}
    assert ids("q=user-7") == {LIVE_ID}
    assert ids("q=dianping") == {TRANSCODE_ID}
    assert ids("q=100%25") == set()  # LIKE wildcards are literal
    assert ids("since=2000-01-01T00:00:00Z&until=2100-01-01T00:00:00Z") == ids("")
    assert ids("until=2000-01-01T00:00:00Z") == set()
    assert ids("status=finish") == ids("status=FINISH")  # the filter always took any case
    assert ids(f"q={TRANSCODE_ID}&match=exact") == {TRANSCODE_ID}
    assert ids(f"q={TRANSCODE_ID[:-3]}&match=exact") == set()  # a TaskId or SessionId whole, not a part
    assert ids("q=user-7&match=exact") == set()  # SessionContext is searched only by contains
    assert service.get("/v1/tasks?q=dianping&match=bogus", headers=TOKEN).status_code == 422


def test_a_contains_search_reads_a_bounded_window_per_page_and_its_cursor_searches_further_back(
    service: InProcessService, monkeypatch: pytest.MonkeyPatch
):
    """No index serves a substring: a page reads at most SCAN_CAP tasks (newest first), and one that found less
    than ``limit`` there still hands out a cursor, from which the next page searches on."""
    from mps_callback.api import tasks as api_tasks

    monkeypatch.setattr(api_tasks, "SCAN_CAP", 2)
    found, cursor = [], ""
    for _ in range(10):
        page = service.get(f"/v1/tasks?q=dianping&limit=50{cursor}", headers=TOKEN).json()
        found.append([task["task_id"] for task in page["items"]])
        if page["next_cursor"] is None:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert [task_id for items in found for task_id in items] == [TRANSCODE_ID]
    assert len(found) > 1 and all(len(items) <= 1 for items in found)


@pytest.mark.parametrize(
    ("query", "allowed"),
    [
        ("/v1/tasks?status=bogus", ["PROCESSING", "FINISH", "failed"]),
        ("/v1/tasks?kind=file", ["vod", "live"]),
        (
            f"/v1/tasks/{LIVE_ID}/segments?kind=bogus",
            ["subtitle", "word", "highlight", "review", "quality", "<family>.<list>"],
        ),
    ],
)
def test_unknown_filter_values_answer_422_naming_the_allowed_ones(
    service: InProcessService, query: str, allowed: list[str]
):
    answer = service.get(query, headers=TOKEN)
    assert answer.status_code == 422
    (problem,) = answer.json()["detail"]
    assert all(value in problem["msg"] for value in allowed), problem["msg"]


def test_only_a_semi_joining_planner_has_a_types_holders_counted(
    service: InProcessService, monkeypatch: pytest.MonkeyPatch
):
    """MariaDB's planner is told (``is_common_type``); PostgreSQL's and SQLite's choose by their own statistics."""
    monkeypatch.setattr(tasks_api, "COMMON_TYPE_HOLDERS", 0)
    engine = create_engine(service.database_url)
    try:
        common = run(tasks_api.is_common_type(engine, "ProcessEof"))
    finally:
        run(engine.dispose())
    assert common is (make_url(service.database_url).get_backend_name() == "mysql")


@pytest.mark.parametrize("common_from", [tasks_api.COMMON_TYPE_HOLDERS, 0], ids=["rare types", "common types"])
def test_live_tasks_have_a_type_and_are_found_by_it(
    service: InProcessService, common_from: int, monkeypatch: pytest.MonkeyPatch
):
    """The same answers whichever way the live part is asked (``type_parts``: EXISTS, or a walk in list order)."""
    asked = ask_both_ways(monkeypatch, common_from, tasks_api)

    def ids(query: str) -> set[str]:
        return {t["task_id"] for t in service.get(f"/v1/tasks?{query}", headers=TOKEN).json()["items"]}

    delogo_id = DELOGO["WorkflowTaskEvent"]["TaskId"]
    assert ids("type=ProcessEof") == {LIVE_ID} == ids("type=AiSmartSubtitleResult") == ids("type=AiReviewResult")
    assert ids("type=WorkflowTask") == {TRANSCODE_ID, SUBTITLES_ID, delogo_id}
    assert ids("type=ImagePorn") == set() == ids("type=LiveStreamProcessTask")  # a result Type, not a NotificationType
    assert asked[:3] == [common_from == 0] * 3  # the types the live task holds, each asked the way chosen
    types = {t["task_id"]: t["type"] for t in service.get("/v1/tasks", headers=TOKEN).json()["items"]}
    assert types == {
        LIVE_ID: "ProcessEof",
        TRANSCODE_ID: "WorkflowTask",
        SUBTITLES_ID: "WorkflowTask",
        delogo_id: "WorkflowTask",
    }
    detail = service.get(f"/v1/tasks/{LIVE_ID}", headers=TOKEN).json()
    assert (detail["type"], detail["event_type"]) == ("ProcessEof", None)


def test_cursor_pagination_is_stable_and_complete(service: InProcessService):
    seen, cursor = [], None
    while True:
        query = "/v1/tasks?limit=1" + (f"&cursor={cursor}" if cursor else "")
        page = service.get(query, headers=TOKEN).json()
        seen += [t["task_id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    everything = [t["task_id"] for t in service.get("/v1/tasks?limit=100", headers=TOKEN).json()["items"]]
    assert seen == everything and len(seen) == 4
    assert service.get("/v1/tasks?cursor=garbage", headers=TOKEN).status_code == 400


def every_page(service: InProcessService, path: str) -> list[dict]:
    """Follow next_cursor from the first page to the last."""
    items, cursor = [], None
    while True:
        separator = "&" if "?" in path else "?"
        page = service.get(path + (f"{separator}cursor={cursor}" if cursor else ""), headers=TOKEN).json()
        assert set(page) == {"items", "next_cursor"}
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


@pytest.mark.parametrize("path", ["/v1/tasks", f"/v1/tasks/{LIVE_ID}/segments", f"/v1/tasks/{LIVE_ID}/notifications"])
def test_every_list_answers_items_and_next_cursor_and_pages_completely(service: InProcessService, path: str):
    everything = service.get(path + "?limit=100", headers=TOKEN).json()
    assert everything["next_cursor"] is None and len(everything["items"]) > 2
    assert every_page(service, path + "?limit=1") == everything["items"] == every_page(service, path + "?limit=2")
    assert service.get(f"{path}?cursor=garbage", headers=TOKEN).status_code == 400


def test_notification_history_oldest_first_and_raw_body_redacted(service: InProcessService):
    history = service.get(f"/v1/tasks/{TRANSCODE_ID}/notifications", headers=TOKEN).json()["items"]
    assert len(history) == 2 and history[0]["id"] < history[1]["id"]
    assert all(n["signature"] == "verified" and n["projected_at"] for n in history)
    detail = service.get(f"/v1/notifications/{history[0]['id']}", headers=TOKEN).json()
    assert detail["body"]["WorkflowTaskEvent"]["Status"] == "PROCESSING"
    assert detail["body"]["Sign"] == "[redacted]"
    assert service.get("/v1/notifications/999999999", headers=TOKEN).status_code == 404


VTT_CUE = re.compile(r"^\d+\n\d{2}:\d{2}:\d{2}\.\d{3} --> \d{2}:\d{2}:\d{2}\.\d{3}\n.+$")
SRT_CUE = re.compile(r"^\d+\n\d{2}:\d{2}:\d{2},\d{3} --> \d{2}:\d{2}:\d{2},\d{3}\n.+$")


def test_subtitles_as_webvtt_srt_and_text(service: InProcessService):
    vtt = service.get(f"/v1/tasks/{SUBTITLES_ID}/subtitles", headers=TOKEN)
    assert vtt.headers["content-type"].startswith("text/vtt")
    header, *cues = vtt.text.strip().split("\n\n")
    assert header == "WEBVTT" and len(cues) == 2 and all(VTT_CUE.match(cue) for cue in cues)
    assert cues[0] == "1\n00:00:01.000 --> 00:00:04.500\nsubtitle line 0 of SegmentSet"
    srt = service.get(f"/v1/tasks/{SUBTITLES_ID}/subtitles?format=srt&lang=translation", headers=TOKEN).text
    cues = srt.strip().split("\n\n")
    assert all(SRT_CUE.match(cue) for cue in cues) and cues[1].endswith("translated line 1")
    text = service.get(f"/v1/tasks/{LIVE_ID}/subtitles?format=txt", headers=TOKEN).text
    assert text == "line 0\nline 1\nline 2\nline 3\n"


def test_subtitles_404_says_why(service: InProcessService):
    missing = service.get(f"/v1/tasks/{TRANSCODE_ID}/subtitles", headers=TOKEN)
    assert missing.status_code == 404 and "no subtitle segments" in missing.json()["detail"]
    unknown = service.get("/v1/tasks/nope/subtitles", headers=TOKEN)
    assert unknown.status_code == 404 and unknown.json()["detail"] == "no task nope"
    assert service.get("/v1/tasks/nope", headers=TOKEN).status_code == 404


def test_segments_by_kind_in_time_order(service: InProcessService):
    page = service.get(f"/v1/tasks/{LIVE_ID}/segments?kind=subtitle&limit=3", headers=TOKEN).json()
    assert [s["text"] for s in page["items"]] == ["line 0", "line 1", "line 2"] and page["next_cursor"]
    rest = service.get(
        f"/v1/tasks/{LIVE_ID}/segments?kind=subtitle&limit=3&cursor={page['next_cursor']}", headers=TOKEN
    ).json()
    assert [s["text"] for s in rest["items"]] == ["line 3"] and rest["next_cursor"] is None
    untimed = service.get(f"/v1/tasks/{TRANSCODE_ID}/segments?kind=snapshot", headers=TOKEN).json()
    assert len(untimed["items"]) == 1
    unnamed = service.get(f"/v1/tasks/{LIVE_ID}/segments?kind=SomeFamily.SomeList", headers=TOKEN)
    assert unnamed.status_code == 200 and unnamed.json() == {"items": [], "next_cursor": None}


def test_openapi_documents_the_routes(service: InProcessService):
    spec = service.get("/openapi.json").json()
    assert {"/v1/tasks", "/v1/tasks/{task_id}", "/v1/tasks/{task_id}/subtitles", "/v1/mps/callback"} <= set(
        spec["paths"]
    )
    assert service.get("/docs").status_code == 200
