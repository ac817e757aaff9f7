"""``/ui/tasks/{task_id}``: one task, what it produced, what MPS sent about it and where it went.

Also what the page fetches and posts, off the task's path (which takes any TaskId): the subtitle
viewer's cues (``/ui/cues.json?task=``), the subtitle exports (``/ui/subtitles.vtt?task=``, the
API's ``/subtitles`` behind the login instead of the bearer token), a notification's redacted
body (``/ui/notifications/{id}.json``, for the JSON viewer), a delivery's retry and the task's
reprojection (``POST /ui/reproject``, form field ``task``; POSTs carry the CSRF token).

Every path and query value is hostile: one that names nothing answers a 4xx page saying why
(never a 500, never JSON for a page); every value shown is escaped by the templates.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncEngine

from mps_callback.api.deliveries import get_delivery, retry_delivery
from mps_callback.api.deps import EngineDep
from mps_callback.api.notifications import get_notification
from mps_callback.api.schemas import TaskDetail
from mps_callback.api.subtitles import get_subtitles
from mps_callback.api.tasks import get_task
from mps_callback.project.reproject import reset_tasks
from mps_callback.store.types import INT64
from mps_callback.ui.pages import task_data as data
from mps_callback.ui.session import CsrfDep
from mps_callback.ui.web import SECURITY_HEADERS, query_joint, render, task_path

router = APIRouter()

#: Longest cursor or subtask id a query may carry (the API's cursors are shorter; subtask ids are 32 hex).
MAX_QUERY_CHARS = 512
#: The export's formats and languages, typed as ``get_subtitles`` takes them (a table, not a cast).
SUBTITLE_FORMATS: dict[str, Literal["vtt", "srt", "txt"]] = {"vtt": "vtt", "srt": "srt", "txt": "txt"}
SUBTITLE_LANGS: dict[str, Literal["source", "translation"]] = {"source": "source", "translation": "translation"}


class Refused(Exception):
    """A request the page cannot answer: rendered as ``task_problem.html`` with its status and reason."""

    def __init__(self, status_code: int, reason: str, pending: bool = False) -> None:
        super().__init__(reason)
        self.status_code = status_code
        self.reason = reason
        self.pending = pending


def _problem(request: Request, refused: Refused, task_id: str | None = None) -> HTMLResponse:
    context = {"status_code": refused.status_code, "reason": refused.reason, "pending": refused.pending}
    return render(request, "task_problem.html", {**context, "task_id": task_id}, refused.status_code)


def _query(request: Request, name: str) -> str | None:
    """A query value checked for what every one must be: short, no NUL (else a 400 page)."""
    value = request.query_params.get(name)
    if value is None or value == "":
        return None
    if len(value) > MAX_QUERY_CHARS or "\x00" in value:
        raise Refused(400, f"query parameter {name} is not one this page gave out")
    return value


def _offset(request: Request) -> int:
    value = _query(request, "cues") or "0"
    if not value.isascii() or not value.isdigit() or int(value) > INT64:
        raise Refused(400, "query parameter cues must be a cue number (0, 200, 400, ...)")
    return int(value)


async def _task(engine: AsyncEngine, task_id: str) -> TaskDetail:
    """The task as ``GET /v1/tasks/{id}`` gives it, or Refused: 404 saying why not, 202 while it awaits projection."""
    problem = data.task_id_problem(task_id)
    if problem:
        raise Refused(404, f"no such task: {problem}")
    try:
        return await get_task(engine, task_id)
    except HTTPException as error:
        if "not projected yet" in str(error.detail):
            # Its notifications are journalled, the projection is on its way (or being rebuilt): 202, not
            # "not found"; the page reloads itself until the task is back.
            raise Refused(202, str(error.detail), pending=True) from None
        raise Refused(error.status_code, str(error.detail)) from None


async def _page_context(request: Request, engine: AsyncEngine, task_id: str) -> dict[str, Any]:
    task = await _task(engine, task_id)
    outputs = data.shown_outputs(task)
    tracks = await data.subtitle_tracks(engine, task_id)
    track = _chosen_track(request, tracks)
    offset = _offset(request)
    cues = await data.track_cues(engine, task_id, track.subtask_id, offset, data.CUES_PER_PAGE) if track else []
    kinds = data.other_kinds(task)
    length, lanes = await data.timeline(engine, task, kinds)
    kind = _query(request, "kind") or (kinds[0][0] if kinds else None)
    if kind is not None and not data.segment_kind_ok(kind):
        raise Refused(400, "query parameter kind is not a segment kind")
    segment_page = await _segments(engine, task_id, kind, _query(request, "cursor"))
    return {
        "task": task,
        "status": data.status_word(task),
        "reasons": data.failure_reasons(task),
        "media": data.media_summary(task.media_metadata),
        "outputs": outputs[: data.OUTPUTS_SHOWN],
        "outputs_shown": data.OUTPUTS_SHOWN,
        "player": data.player_url(outputs),
        "tracks": tracks,
        "track": track,
        "cues": cues,
        "cue_offset": offset,
        "cues_per_page": data.CUES_PER_PAGE,
        "kinds": kinds,
        "kind": kind,
        "timeline_length": length,
        "lanes": lanes,
        "segments": segment_page,
        "received": await _received(engine, task_id, _query(request, "notifications")),
        "deliveries": await data.task_deliveries(engine, task_id),
        "notice": _notice(request),
        "clock": data.clock,
        "label": data.segment_label,
        "safe_url": data.safe_url,
        "subtask_failed": data.subtask_failed,
    }


def _chosen_track(request: Request, tracks: list[data.Track]) -> data.Track | None:
    wanted = _query(request, "subtask")
    if wanted is None:
        return tracks[0] if tracks else None
    chosen = next((track for track in tracks if track.subtask_id == wanted), None)
    if chosen is None:
        raise Refused(404, "query parameter subtask names no subtask of this task with subtitle cues")
    return chosen


async def _segments(engine: AsyncEngine, task_id: str, kind: str | None, cursor: str | None) -> Any:
    if kind is None:
        return None
    try:
        return await data.segment_page(engine, task_id, kind, cursor)
    except HTTPException as error:  # a cursor it never gave out
        raise Refused(error.status_code, str(error.detail)) from None


async def _received(engine: AsyncEngine, task_id: str, cursor: str | None) -> data.Received:
    try:
        return await data.received(engine, task_id, cursor)
    except HTTPException as error:
        raise Refused(error.status_code, str(error.detail)) from None


#: What a redirect back to the page may announce: the query flag and its sentence.
NOTICES = {
    "reprojected": "Reprojection started: the background projector is rebuilding this task from its notifications.",
    "retried": "Delivery made due now: the forwarder sends it on its next pass.",
}


def _notice(request: Request) -> str | None:
    return next((text for flag, text in NOTICES.items() if request.query_params.get(flag) == "1"), None)


# ---------------------------------------------------------------- what the page fetches


def _task_query(request: Request) -> str:
    """The ``task`` query value naming the task (every TaskId, ``/`` and ``..`` too), or a 400 saying it is missing."""
    task_id = request.query_params.get("task")
    if not task_id:
        raise Refused(400, "query parameter task is missing: which task?")
    return task_id


# Off the task's path (``/ui/tasks/{id}`` takes any TaskId, so ``a/cues.json`` is a task's page):
# the task is a query value, the action's a form field.
@router.get("/cues.json")
async def task_cues(request: Request, engine: EngineDep) -> Response:
    """Every cue of one track, as ``[start, end, source, translation]`` rows: the viewer renders the visible ones."""
    try:
        task_id = _task_query(request)
        await _task(engine, task_id)
        track = _chosen_track(request, await data.subtitle_tracks(engine, task_id))
    except Refused as refused:
        return JSONResponse({"detail": refused.reason}, refused.status_code, headers=SECURITY_HEADERS)
    cues = await data.track_cues(engine, task_id, track.subtask_id) if track else []
    body = {"subtask": track.subtask_id if track else None, "cues": cues}
    return JSONResponse(body, headers=SECURITY_HEADERS)


@router.get("/subtitles.{fmt}")
async def task_subtitles(request: Request, engine: EngineDep, fmt: str) -> Response:
    """The subtitle export of ``GET /v1/tasks/{id}/subtitles``, behind the login rather than the bearer token."""
    task_id = request.query_params.get("task")
    try:
        task_id = _task_query(request)
        await _task(engine, task_id)
        if fmt not in SUBTITLE_FORMATS:
            raise Refused(404, f"no subtitle format {fmt!r}: vtt, srt or txt")
        lang = _query(request, "lang") or "source"
        if lang not in SUBTITLE_LANGS:
            raise Refused(400, "query parameter lang must be source or translation")
        subtask = _query(request, "subtask")
        try:
            exported = await get_subtitles(
                engine, task_id, format=SUBTITLE_FORMATS[fmt], lang=SUBTITLE_LANGS[lang], subtask=subtask
            )
        except HTTPException as error:
            raise Refused(error.status_code, str(error.detail)) from None
        exported.headers.update(SECURITY_HEADERS)  # served from the dashboard's origin: nosniff, its CSP
        return exported
    except Refused as refused:
        return _problem(request, refused, task_id)


@router.get("/notifications/{notification_id}.json")
async def notification_json(engine: EngineDep, notification_id: str) -> Response:
    """One notification's redacted body, fetched by the JSON viewer when opened: the page carries only links.

    A body can be megabytes: inlined in the page (escaped, pretty-printed) it made every visit slow.
    """
    if not notification_id.isascii() or not notification_id.isdigit() or not 1 <= int(notification_id) <= INT64:
        return JSONResponse(
            {"detail": "no such notification: ids are positive whole numbers"}, 404, headers=SECURITY_HEADERS
        )
    try:
        detail = await get_notification(engine, int(notification_id))
    except HTTPException as error:
        return JSONResponse({"detail": str(error.detail)}, error.status_code, headers=SECURITY_HEADERS)
    return JSONResponse(detail.body, headers=SECURITY_HEADERS)


# ---------------------------------------------------------------- actions


@router.post("/reproject")
async def reproject_task(request: Request, engine: EngineDep, _csrf: CsrfDep) -> Response:
    """Forget the task's projection (form field ``task``), mark its notifications pending: the projector rebuilds it."""
    task_id = (await request.form()).get("task")
    if not isinstance(task_id, str) or not task_id:
        return _problem(request, Refused(400, "form field task is missing: which task?"))
    try:
        await _task(engine, task_id)
    except Refused as refused:
        if not refused.pending:  # a task still being rebuilt is reset again all the same
            return _problem(request, refused, task_id)
    await reset_tasks(engine, [task_id])
    return RedirectResponse(_task_path(task_id, "reprojected=1"), 303)


@router.post("/deliveries/{delivery_id}/retry")
async def retry(request: Request, engine: EngineDep, delivery_id: str, _csrf: CsrfDep) -> Response:
    """Make a pending or dead delivery due now (the API's retry); a delivered one is refused with 409."""
    if not delivery_id.isascii() or not delivery_id.isdigit() or not 1 <= int(delivery_id) <= INT64:
        return _problem(request, Refused(404, "no such delivery: delivery ids are positive whole numbers"))
    number = int(delivery_id)
    try:
        delivery = await get_delivery(engine, number)
    except HTTPException as error:
        return _problem(request, Refused(error.status_code, str(error.detail)))
    try:
        await retry_delivery(engine, number)
    except HTTPException as error:  # 409: delivered already, its receiver has it
        return _problem(request, Refused(error.status_code, str(error.detail)), delivery.task_id)
    if delivery.task_id is None:
        return RedirectResponse("/ui/", 303)
    return RedirectResponse(_task_path(delivery.task_id, "retried=1#deliveries"), 303)


def _task_path(task_id: str, query: str) -> str:
    """The page's URL with ``query``, as the templates build it (``task_path``)."""
    page = task_path(task_id)
    return page + query_joint(page) + query


# The page: its path takes any TaskId, slashes too; nothing else is under /ui/tasks/.
@router.get("/tasks/{task_id:path}", response_class=HTMLResponse)
async def task_page(request: Request, engine: EngineDep, task_id: str) -> HTMLResponse:
    """The page; ``/ui/tasks/?task=..`` for the TaskIds a path cannot carry (``.`` and ``..``: see ``task_path``)."""
    try:
        if task_id == "":
            task_id = _task_query(request)
        context = await _page_context(request, engine, task_id)
    except Refused as refused:
        return _problem(request, refused, task_id)
    return render(request, "task.html", context)
