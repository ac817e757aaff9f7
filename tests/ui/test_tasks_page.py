"""The tasks page on every backend: the list, its filters from the URL, paging, counts, the live poll.

The page must show what the query API shows for the same filters (it runs the same SQL), escape
every value a notification carries, and answer every bad parameter with a 4xx page saying why.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from mps_callback.api import cursor as cursors
from mps_callback.api import tasks as tasks_api
from mps_callback.send import stamp
from mps_callback.store.engine import create_engine
from mps_callback.store.tables import subtasks, tasks
from mps_callback.ui.pages import tasks as tasks_page
from tests.support.bodies import load_fixture
from tests.support.db import run
from tests.support.projection import live_series, processing_version
from tests.support.service import InProcessService
from tests.support.task_types import ask_both_ways

TRANSCODE = load_fixture("examples/doc-vod-WorkflowTask-transcode.json")
TRANSCODE_ID = TRANSCODE["WorkflowTaskEvent"]["TaskId"]
SUBTITLES = load_fixture("vod/WorkflowTask-SmartSubtitles-TransTextTask.json")
SUBTITLES_ID = SUBTITLES["WorkflowTaskEvent"]["TaskId"]
DELOGO = load_fixture("vod/WorkflowTask-AiAnalysis-DeLogoTask.json")
DELOGO_ID = DELOGO["WorkflowTaskEvent"]["TaskId"]
LIVE_ID = "2400002-procedure-live-ui-1"
HOSTILE_ID = "2400002-WorkflowTask-<script>alert('id')</script>\"&x"
HOSTILE_CONTEXT = "<img src=x onerror=alert(1)>\"'</td>"
HOSTILE_SESSION = "<b>session</b>"


def hostile() -> dict[str, Any]:
    body = copy.deepcopy(TRANSCODE)
    body["WorkflowTaskEvent"]["TaskId"] = HOSTILE_ID
    body.update(SessionContext=HOSTILE_CONTEXT, SessionId=HOSTILE_SESSION)
    return body


#: Posted in this order: the page lists them the other way round.
BODIES = [TRANSCODE, SUBTITLES, processing_version(DELOGO), *live_series(LIVE_ID), hostile()]
NEWEST_FIRST = [HOSTILE_ID, LIVE_ID, DELOGO_ID, SUBTITLES_ID, TRANSCODE_ID]


@pytest.fixture(scope="module")
def service(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessService]:
    with InProcessService(module_database_url, tmp_path_factory.mktemp("ui"), notify_keys="k") as running:
        for body in BODIES:
            assert running.post(stamp(body, "k")).status_code == 200
        assert running.project() == len(BODIES)
        yield running


class Rows(HTMLParser):
    """The text of each cell of the list's rows, and each TaskId link."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.links: list[str] = []
        self._in_body = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tbody":
            self._in_body = True
        elif self._in_body and tag == "tr":
            self.rows.append([])
        elif self._in_body and tag == "td":
            self._cell = []
        elif self._in_body and tag == "a" and (href := dict(attrs).get("href") or "").startswith("/ui/tasks/"):
            self.links.append(href)

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def rows(html: str) -> list[list[str]]:
    parser = Rows()
    parser.feed(html)
    return parser.rows


def task_ids(html: str) -> list[str]:
    """The TaskIds listed (the first line of the Task cell)."""
    ids = []
    for match in re.finditer(r'<td class="task-id"><a href="[^"]*">([^<]*)</a>', html):
        parser = Rows()
        parser.feed(f"<table><tbody><tr><td>{match.group(1)}</td></tr></tbody></table>")
        ids.append(parser.rows[0][0])
    return ids


def chips(html: str) -> dict[str, str]:
    """The status chips: status -> the count shown."""
    found = re.findall(r'<span class="status [a-z]+">([A-Za-z]+)</span> <span class="count">([^<]+)</span>', html)
    return dict(found)


def next_link(html: str) -> str | None:
    found = re.search(r'<a rel="next" href="([^"]+)"', html)
    return found.group(1).replace("&amp;", "&") if found else None


def api_ids(service: InProcessService, query: dict[str, str]) -> list[str]:
    answer = service.get("/v1/tasks?" + urlencode(query))
    assert answer.status_code == 200, answer.text
    return [item["task_id"] for item in answer.json()["items"]]


# ---------------------------------------------------------------- the list


def test_the_list_shows_every_task_newest_first_with_what_it_is(service: InProcessService):
    answer = service.get("/ui/")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    assert task_ids(answer.text) == NEWEST_FIRST
    by_id = {row[1].split(" ")[0]: row for row in rows(answer.text) if not row[1].startswith("2400002-WorkflowTask-<")}
    status, _, kind, kind_type, name, subtasks, received, finished = by_id[TRANSCODE_ID]
    assert (status, kind, kind_type, name) == ("failed", "vod", "WorkflowTask", "dianping2.mp4")
    assert subtasks == "4 1 failed"  # four subtasks, the AnimatedGraphicTask failed
    assert received.endswith("UTC") and finished.endswith("UTC")
    live = by_id[LIVE_ID]
    assert (live[0], live[2], live[3]) == ("FINISH", "live", "ProcessEof")
    assert "user-7" in live[1]  # its SessionContext
    assert by_id[DELOGO_ID][0] == "PROCESSING" and by_id[DELOGO_ID][7] == ""


def test_values_from_notifications_are_escaped(service: InProcessService):
    html = service.get("/ui/").text
    for raw in (HOSTILE_ID, HOSTILE_CONTEXT, HOSTILE_SESSION, "<script>", "<img", "<b>session"):
        assert raw not in html
    assert "&lt;script&gt;alert(&#39;id&#39;)&lt;/script&gt;&#34;&amp;x" in html
    assert "&lt;img src=x onerror=alert(1)&gt;&#34;&#39;&lt;/td&gt;" in html
    parser = Rows()
    parser.feed(html)
    assert "/ui/tasks/2400002-WorkflowTask-%3Cscript%3Ealert%28%27id%27%29%3C%2Fscript%3E%22%26x" in parser.links
    assert rows(html)[0][1].startswith(HOSTILE_ID)  # shown as text, whole


# ---------------------------------------------------------------- filters: the API's answer, in the page


@pytest.mark.parametrize(
    "query",
    [
        {"status": "FINISH"},
        {"status": "failed"},
        {"status": "PROCESSING"},
        {"status": "finish"},  # the API's spellings
        {"kind": "live"},
        {"kind": "vod", "status": "failed"},
        {"type": "WorkflowTask"},
        {"type": "ProcessEof"},
        {"type": "AiSmartSubtitleResult"},
        {"since": "2000-01-01T00:00:00", "until": "2100-01-01T00:00:00"},
        {"since": "2100-01-01T00:00:00"},
        {"until": "2000-01-01T00:00:00Z"},
        {"q": "user-7", "match": "contains"},
        {"q": "dianping2", "match": "contains"},
        {"q": "<script>", "match": "contains"},
        {"q": "50%_off", "match": "contains"},
    ],
    ids=urlencode,
)
def test_each_filter_lists_what_the_api_lists(service: InProcessService, query: dict[str, str]):
    answer = service.get("/ui/?" + urlencode(query))
    assert answer.status_code == 200
    listed = task_ids(answer.text)
    assert listed == api_ids(service, {name: value for name, value in query.items() if name != "match"})
    assert listed or "No task matches these filters" in answer.text


@pytest.mark.parametrize(
    ("q", "expected"),
    [(TRANSCODE_ID, [TRANSCODE_ID]), (HOSTILE_SESSION, [HOSTILE_ID]), (TRANSCODE_ID[:10], []), ("user-7", [])],
)
def test_the_default_search_is_an_exact_taskid_or_sessionid(service: InProcessService, q: str, expected: list[str]):
    assert task_ids(service.get("/ui/?" + urlencode({"q": q})).text) == expected


def test_the_form_shows_the_filters_of_the_url(service: InProcessService):
    query = {"status": "failed", "kind": "vod", "type": "WorkflowTask", "since": "2026-01-02T03:04:05+08:00"}
    html = service.get("/ui/?" + urlencode({**query, "q": "x\"'<y", "match": "contains"})).text
    assert '<option value="failed" selected>' in html and '<option value="vod" selected>' in html
    assert 'name="type" value="WorkflowTask"' in html
    assert 'name="since" value="2026-01-01T19:04:05"' in html  # in UTC, as the field says
    assert 'name="q" value="x&#34;&#39;&lt;y"' in html
    assert '<option value="contains" selected>' in html


# ---------------------------------------------------------------- counts


def test_counts_per_status_follow_the_other_filters(service: InProcessService):
    everything = chips(service.get("/ui/").text)
    assert everything == {"PROCESSING": "1", "FINISH": "4", "failed": "2"}
    assert chips(service.get("/ui/?status=failed").text) == everything  # the status filter is not applied to them
    assert chips(service.get("/ui/?kind=live").text) == {"PROCESSING": "0", "FINISH": "1", "failed": "0"}
    html = service.get("/ui/?kind=vod&status=PROCESSING").text
    assert 'href="/ui/?status=FINISH&amp;kind=vod"' in html  # a chip keeps the other filters
    assert chips(service.get("/ui/?q=user&match=contains").text) == dict.fromkeys(everything, "\u2013")


def test_counts_stop_at_the_cap(service: InProcessService, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(tasks_page, "COUNT_CAP", 2)
    assert chips(service.get("/ui/").text) == {"PROCESSING": "1", "FINISH": "2+", "failed": "2"}


# ---------------------------------------------------------------- paging


def test_next_page_links_walk_every_task_once_keeping_the_filters(service: InProcessService):
    seen: list[str] = []
    link: str | None = "/ui/?kind=vod&limit=2"
    pages = 0
    while link:
        assert parse_qs(urlsplit(link).query)["kind"] == ["vod"]
        html = service.get(link).text
        seen += task_ids(html)
        link = next_link(html)
        pages += 1
    assert seen == [task for task in NEWEST_FIRST if task != LIVE_ID] and pages == 2
    assert "« Newest" in service.get("/ui/?kind=vod&limit=2&cursor=" + _cursor_after(service, 2)).text


def _cursor_after(service: InProcessService, limit: int) -> str:
    found = next_link(service.get(f"/ui/?kind=vod&limit={limit}").text)
    assert found
    return parse_qs(urlsplit(found).query)["cursor"][0]


def test_a_contains_search_reads_a_bounded_window_per_page_then_searches_further_back(
    service: InProcessService, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(tasks_page, "SCAN_CAP", 2)
    link: str | None = "/ui/?" + urlencode({"q": "f46dac7fe", "match": "contains"})  # in TRANSCODE's TaskId only
    found: list[list[str]] = []
    notes: list[bool] = []
    while link:
        html = service.get(link).text
        found.append(task_ids(html))
        notes.append("Searched 2 tasks, back to" in html)
        link = next_link(html)
    assert found == [[], [], [TRANSCODE_ID]]  # five tasks, newest first: two, two, then the last one
    assert notes == [True, True, False]


# ---------------------------------------------------------------- hostile parameters


@pytest.mark.parametrize(
    ("query", "status_code", "reason"),
    [
        ("status=bogus", 422, "status"),
        ("kind=tv", 422, "kind"),
        ("since=yesterday", 422, "since"),
        ("since=9999-12-31T23:59:59-23:59", 422, "out of range"),
        ("since=2026-02-01T00:00:00&until=2026-01-01T00:00:00", 422, "since must be before until"),
        ("q=" + "x" * 201, 422, "at most 200"),
        ("type=" + "T" * 129, 422, "at most 128"),
        ("match=regex", 422, "match"),
        ("limit=0", 422, "limit"),
        ("limit=lots", 422, "limit"),
        ("status=FINISH&status=failed", 422, "more than once"),
        ("q=a%00b", 422, "NUL"),
        ("cursor=not-a-cursor", 400, "cursor is not one"),
        ("cursor=" + cursors.encode("segments", 1.0, 2), 400, "cursor is not one"),
        ("cursor=" + cursors.encode("tasks", "9999-12-31T23:59:59-23:59", "x"), 400, "cursor is not one"),
        ("cursor=" + "A" * 1300, 422, "cursor"),
        ("q=%3Cscript%3Ealert(1)%3C/script%3E&since=%3Cscript%3E", 422, "since"),
    ],
)
def test_bad_parameters_answer_a_4xx_page_saying_why(
    service: InProcessService, query: str, status_code: int, reason: str
):
    answer = service.get("/ui/?" + query)
    assert answer.status_code == status_code, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert "These filters cannot be used" in answer.text and reason in answer.text
    assert "<script>" not in answer.text
    assert answer.headers["content-security-policy"].startswith("default-src 'self'")


# ---------------------------------------------------------------- the live poll


def test_the_poll_answers_nothing_until_a_task_arrives(database_url: str, tmp_path: Path):
    with InProcessService(database_url, tmp_path, notify_keys="k") as service:
        assert service.post(stamp(TRANSCODE, "k")).status_code == 200
        service.project()
        page = service.get("/ui/?kind=vod")
        seen = re.search(r'name="seen" value="([^"]*)"', page.text)
        assert seen and 'hx-get="/ui/?kind=vod"' in page.text
        poll = {"HX-Request": "true"}

        assert service.get("/ui/", params={"kind": "vod", "seen": seen.group(1)}, headers=poll).status_code == 204
        assert service.post(stamp(SUBTITLES, "k")).status_code == 200
        assert service.get("/ui/", params={"kind": "vod", "seen": seen.group(1)}, headers=poll).status_code == 204
        service.project()  # the page shows projected tasks: now there is news

        partial = service.get("/ui/", params={"kind": "vod", "seen": seen.group(1)}, headers=poll)
        assert partial.status_code == 200 and "<html" not in partial.text
        assert task_ids(partial.text) == [SUBTITLES_ID, TRANSCODE_ID]
        assert chips(partial.text)["FINISH"] == "2"
        newer = re.search(r'name="seen" value="([^"]*)"', partial.text)
        assert newer and newer.group(1) != seen.group(1)
        assert service.get("/ui/", params={"kind": "vod", "seen": newer.group(1)}, headers=poll).status_code == 204


def test_a_poll_after_the_login_expired_sends_htmx_to_the_login_keeping_the_view(tmp_path: Path):
    with InProcessService(f"sqlite+aiosqlite:///{tmp_path}/ui.db", tmp_path, api_token="t0ken") as service:
        answer = service.get("/ui/", params={"kind": "vod", "seen": "x"}, headers={"HX-Request": "true"})
        assert answer.status_code == 401
        assert answer.headers["hx-redirect"] == "/ui/login?next=/ui/%3Fkind%3Dvod%26seen%3Dx"


@pytest.mark.parametrize("type_name", ["WorkflowTask", "ProcessEof"])
def test_pages_of_a_type_walk_what_the_api_lists(service: InProcessService, type_name: str):
    seen: list[str] = []
    link: str | None = f"/ui/?type={type_name}&limit=1"
    while link:
        html = service.get(link).text
        seen += task_ids(html)
        link = next_link(html)
    assert seen == api_ids(service, {"type": type_name}) and seen
    counts = chips(service.get(f"/ui/?type={type_name}").text)
    assert counts == (
        {"PROCESSING": "1", "FINISH": "3", "failed": "2"}
        if type_name == "WorkflowTask"
        else {"PROCESSING": "0", "FINISH": "1", "failed": "0"}
    )


@pytest.mark.parametrize("common_from", [tasks_api.COMMON_TYPE_HOLDERS, 0], ids=["rare type", "common type"])
def test_a_type_both_file_and_live_tasks_have_merges_in_list_order(
    database_url: str, tmp_path: Path, common_from: int, monkeypatch: pytest.MonkeyPatch
):
    """The type filter reads file and live tasks apart (each through its index): pages merge them newest first,
    and the chips count the same, whichever way the live part asks the subtasks."""
    asked = ask_both_ways(monkeypatch, common_from, tasks_page)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    rows = [_task("file" if n % 3 else "live", n, start + timedelta(minutes=n)) for n in range(7)]
    run(_insert(database_url, rows))
    with InProcessService(database_url, tmp_path, notify_keys="k") as service:
        seen: list[str] = []
        link: str | None = "/ui/?type=Mixed&limit=2"
        while link:
            html = service.get(link).text
            seen += task_ids(html)
            link = next_link(html)
        assert seen == [row["task_id"] for row in reversed(rows)]
        assert chips(service.get("/ui/?type=Mixed").text) == {"PROCESSING": "0", "FINISH": "7", "failed": "0"}
        assert set(asked) == {common_from == 0}  # every list and count query asked the live part the way chosen


def _task(kind: str, number: int, received: datetime) -> dict[str, Any]:
    return {
        "task_id": f"{kind}-{number}",
        "kind": "live" if kind == "live" else "vod",
        "event_type": None if kind == "live" else "Mixed",
        "status": "FINISH",
        "failed": False,
        "first_received_at": received,
        "last_received_at": received,
        "notification_count": 1,
        "state_key": "1:x",
        "session_key": "1:x",
    }


async def _insert(url: str, rows: list[dict[str, Any]]) -> None:
    """Tasks as the projector would leave them; live ones with a subtask grouped under the type they received."""
    live = [row for row in rows if row["kind"] == "live"]
    steps = [
        {"id": f"s-{row['task_id']}", "task_id": row["task_id"], "key": "Mixed/0", "group_name": "Mixed"}
        | {"family": "Mixed", "mode": "list", "state_key": "1:x", "notification_id": 1}
        for row in live
    ]
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(tasks.insert(), rows)
            await connection.execute(subtasks.insert(), steps)
    finally:
        await engine.dispose()
