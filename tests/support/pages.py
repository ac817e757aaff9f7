"""What the dashboard's tests share: the login and its CSRF token, bodies that make tasks worth a page, and
sending them through the callback."""

from __future__ import annotations

import copy
import re
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from mps_callback.send import stamp
from tests.support.bodies import load_fixture
from tests.support.service import InProcessService

TOKEN = "ui-secret-1"
FORM = {"content-type": "application/x-www-form-urlencoded"}
SUBTITLES = load_fixture("vod/WorkflowTask-SmartSubtitles-TransTextTask.json")
TRANSCODE = load_fixture("vod/WorkflowTask-MediaProcess-TranscodeTask.json")
PLAYABLE = load_fixture("ui/WorkflowTask-Transcode-SmartSubtitles.json")


def csrf_of(service: InProcessService) -> str:
    """The CSRF token a page handed this client (its cookie, set by the login page)."""
    service.get("/ui/login")
    return str(service._client.cookies.get("mps_csrf"))


def log_in(service: InProcessService, token: str = TOKEN, next_path: str = "/ui/health") -> httpx.Response:
    csrf = csrf_of(service)
    return service.post(
        urlencode({"token": token, "next": next_path, "csrf": csrf}).encode(), "/ui/login", headers=FORM
    )


def task_id_of(body: dict[str, Any]) -> str:
    event = body.get("WorkflowTaskEvent") or body.get("ScheduleTaskEvent") or body
    return str(event["TaskId"])


def page_path(task_id: str) -> str:
    return "/ui/tasks/" + quote(task_id, safe="")


def send(service: InProcessService, *bodies: dict[str, Any]) -> None:
    for body in bodies:
        assert service.post(stamp(body, "k")).status_code == 200
    service.project()


def csrf(service: InProcessService, task_id: str) -> str:
    """The token the page handed this client (its cookie; the page's forms carry the same)."""
    answer = service.get(page_path(task_id))
    token = re.search(r'name="csrf" value="([0-9a-f]{32})"', answer.text)
    assert token is not None
    return token.group(1)


def with_cues(task_id: str, count: int) -> dict[str, Any]:
    """The TransText body with ``count`` cues, one a second."""
    body = copy.deepcopy(SUBTITLES)
    body["WorkflowTaskEvent"]["TaskId"] = task_id
    task = body["WorkflowTaskEvent"]["SmartSubtitlesTaskResult"][0]["TransTextTask"]
    task["Output"]["SegmentSet"] = [
        {"StartTimeOffset": float(i), "EndTimeOffset": i + 0.8, "Text": f"cue {i}", "Trans": f"trans {i}"}
        for i in range(count)
    ]
    return body
