"""``/v1/tasks/{task_id}/subtitles``: a subtitle file rebuilt from the task's subtitle segments."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Literal
from urllib.parse import quote

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query, Response

from mps_callback.api.deps import EngineDep
from mps_callback.api.params import refuse_nul
from mps_callback.api.subtitle_files import Line, render
from mps_callback.project.extractors import ROUTES
from mps_callback.store.tables import segments, subtasks, tasks

router = APIRouter(prefix="/v1", tags=["query"], dependencies=[Depends(refuse_nul)])

MEDIA_TYPES = {
    "vtt": "text/vtt; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
}

#: Which subtask's lines to use when a task has several with as many lines, best first: declared
#: by each group module (``subtitle_preference``), matched by family name.
FAMILY_PREFERENCE = ROUTES.subtitle_preference

#: Longest TaskId put in the file name offered.
FILENAME_CHARS = 120


@router.get(
    "/tasks/{task_id}/subtitles",
    summary="Subtitle file (WebVTT, SRT or text) rebuilt from segments",
    responses={200: {"content": {media: {} for media in MEDIA_TYPES.values()}}, 404: {"description": "no subtitles"}},
)
async def get_subtitles(
    engine: EngineDep,
    task_id: str,
    format: Literal["vtt", "srt", "txt"] = "vtt",
    lang: Annotated[
        Literal["source", "translation"], Query(description="the recognised text, or its translation")
    ] = "source",
    subtask: Annotated[str | None, Query(description="the subtask id to take lines from; default: the fullest")] = None,
) -> Response:
    query = (
        sa.select(
            segments.c.subtask_id,
            segments.c.start_s,
            segments.c.end_s,
            segments.c.text,
            segments.c.translation,
            segments.c.extra,
            subtasks.c.family,
        )
        .join(subtasks, subtasks.c.id == segments.c.subtask_id)
        .where(segments.c.task_id == task_id, segments.c.kind == "subtitle")
    )
    if subtask is not None:
        query = query.where(segments.c.subtask_id == subtask)
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
        if not rows:
            known = (await connection.execute(sa.select(tasks.c.task_id).where(tasks.c.task_id == task_id))).first()
            reason = f"task {task_id} has no subtitle segments" if known else f"no task {task_id}"
            raise HTTPException(404, reason)
    by_subtask: dict[str, list[Line]] = defaultdict(list)
    families: dict[str, str] = {}
    for row in rows:
        text = row.translation if lang == "translation" else row.text
        steady = (row.extra or {}).get("SteadyState", True) is not False  # live: skip lines still being revised
        if text and row.start_s is not None and steady:
            by_subtask[row.subtask_id].append(Line(row.start_s, row.end_s, text))
            families[row.subtask_id] = row.family
    if not by_subtask:
        raise HTTPException(404, f"task {task_id} has no {lang} subtitle text")
    chosen = max(by_subtask, key=lambda sid: (len(by_subtask[sid]), -_preference(families[sid]), sid))
    body = render(by_subtask[chosen], format)
    headers = {"Content-Disposition": content_disposition(task_id, f".{lang}.{format}")}
    return Response(body, media_type=MEDIA_TYPES[format], headers=headers)


def _preference(family: str) -> int:
    return FAMILY_PREFERENCE.index(family) if family in FAMILY_PREFERENCE else len(FAMILY_PREFERENCE)


def content_disposition(stem: str, suffix: str) -> str:
    """``inline`` with the file name as RFC 6266 wants it: an ASCII ``filename`` and the exact ``filename*``.

    A header is Latin-1 on the wire: a TaskId in another script (``任务-1``) put into
    ``filename`` raised a 500. ``filename*=UTF-8''...`` (RFC 8187 percent-encoding) carries any
    name, and clients that do not read it use the ASCII fallback (others replaced by ``_``).
    """
    name = stem[:FILENAME_CHARS] + suffix
    fallback = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "_" for ch in name)
    return f"inline; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
