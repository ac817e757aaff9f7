"""What the task page shows, gathered by the query API's own functions (and two small queries of its own).

The page reads the same answers ``/v1/tasks/{id}``, ``/segments``, ``/notifications`` and
``/v1/deliveries`` give, by calling those functions: one definition of each question. Its
own queries are the two the API has no route for: which subtasks hold subtitle cues (the
viewer's tracks), and every cue of one track at once (the viewer's JSON, virtualised in
the browser).

Every value here came from a notification: hostile text the templates escape. URLs taken
straight from a body (an output's ``UrlSet``, a segment's ``Url``) become links or players
only when they are http(s): ``javascript:`` never reaches an ``href`` or ``src``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from fastapi import HTTPException
from sqlalchemy.ext.asyncio import AsyncEngine

from mps_callback.api.deliveries import list_deliveries
from mps_callback.api.params import KNOWN_SEGMENT_KINDS, UNNAMED_SEGMENT_KIND
from mps_callback.api.schemas import (
    DeliverySummary,
    NotificationSummary,
    Output,
    Segment,
    SegmentPage,
    Subtask,
    TaskDetail,
)
from mps_callback.api.subtitles import FAMILY_PREFERENCE
from mps_callback.api.tasks import list_segments, task_notifications
from mps_callback.store.tables import segments, subtasks, tasks
from mps_callback.store.types import width

#: Longest TaskId the tasks table holds: a longer one names no task (and is never sent to SQL).
MAX_TASK_ID = width(tasks.c.task_id)
#: Cues per server-rendered page (the page without JavaScript; the viewer loads them all).
CUES_PER_PAGE = 200
#: Segments per page of a kind's table, and per kind on the timeline (its first ones).
SEGMENTS_PER_PAGE = 50
TIMELINE_SEGMENTS = 500
#: Notifications per page (each a link to its raw JSON) and deliveries shown.
NOTIFICATIONS_PER_PAGE = 20
DELIVERIES_SHOWN = 100
#: Outputs shown with their previews: a live stream's recordings can number thousands (the API lists them all).
OUTPUTS_SHOWN = 200
#: Subtask statuses that mean it failed (with an ErrCode, any status does).
FAILED_STATUSES = frozenset({"FAIL", "FAILED", "ERROR"})
#: Output kinds and the element that previews them; any other kind is a link.
PREVIEWS = {"video": "video", "audio": "audio", "image": "image", "subtitle": "link", "playlist": "link"}


def task_id_problem(task_id: str) -> str | None:
    """Why ``task_id`` can name no task (shown on the 404 page), or None when it may.

    NUL never reaches a query (PostgreSQL refuses it in any text, a 500 there); an id longer
    than the column names nothing, and MariaDB would only compare its prefix.
    """
    if "\x00" in task_id:
        return "TaskIds never contain NUL"
    if len(task_id) > MAX_TASK_ID:
        return f"TaskIds are at most {MAX_TASK_ID} characters; this one has {len(task_id)}"
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in task_id):
        return "TaskIds are valid Unicode text"
    return None


def safe_url(url: str | None) -> str | None:
    """``url`` when a browser may load it as a link or a player source: http(s) only."""
    if url and url.lower().startswith(("https://", "http://")) and not any(ch.isspace() for ch in url):
        return url
    return None


# ---------------------------------------------------------------- header


def status_word(task: TaskDetail) -> str:
    """failed, or MPS's status (PROCESSING / FINISH): the word and, lowercased, the CSS class."""
    return "failed" if task.failed else task.status


def subtask_failed(subtask: Subtask) -> bool:
    return bool(subtask.err_code) or (subtask.status or "").upper() in FAILED_STATUSES


def failure_reasons(task: TaskDetail) -> list[tuple[str, str]]:
    """Why the task failed: (where, what) for the task's own ErrCode and each failed subtask's."""
    reasons = []
    if task.err_code:
        reasons.append(("task", f"ErrCode {task.err_code}: {task.message or ''}".strip()))
    for subtask in task.subtasks:
        if subtask_failed(subtask):
            code = " ".join(str(part) for part in (subtask.err_code, subtask.err_code_ext) if part)
            reasons.append((f"{subtask.family} {subtask.type or ''}".strip(), f"{code}: {subtask.message or ''}"))
    return reasons


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _duration(meta: dict[str, Any]) -> str | None:
    seconds = _number(meta.get("Duration")) or _number(meta.get("VideoDuration"))
    return clock(seconds) if seconds else None


def _size(meta: dict[str, Any]) -> str | None:
    size = _number(meta.get("Size"))
    if size is None:
        return None
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return None  # pragma: no cover (the loop always returns)


def _resolution(meta: dict[str, Any]) -> str | None:
    width_, height = _number(meta.get("Width")), _number(meta.get("Height"))
    return f"{width_:.0f}\u00d7{height:.0f}" if width_ and height else None


def _codecs(streams: Any) -> str | None:
    found = [str(stream.get("Codec")) for stream in streams or [] if isinstance(stream, dict) and stream.get("Codec")]
    return ", ".join(found) or None


def _bitrate(meta: dict[str, Any]) -> str | None:
    bitrate = _number(meta.get("Bitrate"))
    return f"{bitrate / 1000:.0f} kbit/s" if bitrate else None


#: The media metadata shown, in order: label and how to read it from ``MetaData``.
METADATA_FIELDS = (
    ("duration", _duration),
    ("size", _size),
    ("resolution", _resolution),
    ("bitrate", _bitrate),
    ("container", lambda meta: str(meta["Container"]) if meta.get("Container") else None),
    ("video codecs", lambda meta: _codecs(meta.get("VideoStreamSet"))),
    ("audio codecs", lambda meta: _codecs(meta.get("AudioStreamSet"))),
)


def media_summary(meta: Any) -> list[tuple[str, str]]:
    """The input's metadata worth a glance, as (label, value) pairs; empty when MPS sent none."""
    if not isinstance(meta, dict):
        return []
    pairs = ((label, read(meta)) for label, read in METADATA_FIELDS)
    return [(label, value) for label, value in pairs if value]


def clock(seconds: float | None) -> str:
    """``h:mm:ss.mmm`` (``m:ss.mmm`` under an hour): a cue's or segment's time."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    millis = round(max(seconds, 0.0) * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours}:{minutes:02d}:{secs:02d}.{millis:03d}" if hours else f"{minutes}:{secs:02d}.{millis:03d}"


# ---------------------------------------------------------------- outputs


@dataclass(frozen=True, slots=True)
class ShownOutput:
    output: Output
    url: str | None
    preview: str  # video, audio, image or link


def shown_outputs(task: TaskDetail) -> list[ShownOutput]:
    return [
        ShownOutput(output, safe_url(output.url), PREVIEWS.get(output.kind, "link") if safe_url(output.url) else "none")
        for output in task.outputs
    ]


def player_url(outputs: list[ShownOutput]) -> str | None:
    """The video the subtitle viewer plays: the first video output with a URL a browser may load."""
    return next((shown.url for shown in outputs if shown.preview == "video"), None)


# ---------------------------------------------------------------- subtitle cues


@dataclass(frozen=True, slots=True)
class Track:
    """A subtask holding subtitle cues; the viewer shows one (the fullest, as the subtitle export picks)."""

    subtask_id: str
    family: str
    cues: int


def _preference(family: str) -> int:
    return FAMILY_PREFERENCE.index(family) if family in FAMILY_PREFERENCE else len(FAMILY_PREFERENCE)


async def subtitle_tracks(engine: AsyncEngine, task_id: str) -> list[Track]:
    """The subtasks with subtitle segments, the one ``GET /v1/tasks/{id}/subtitles`` exports first."""
    query = (
        sa.select(segments.c.subtask_id, subtasks.c.family, sa.func.count())
        .join(subtasks, subtasks.c.id == segments.c.subtask_id)
        .where(segments.c.task_id == task_id, segments.c.kind == "subtitle")
        .group_by(segments.c.subtask_id, subtasks.c.family)
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    found = [Track(subtask_id, family, int(count)) for subtask_id, family, count in rows]
    return sorted(found, key=lambda track: (-track.cues, _preference(track.family), track.subtask_id))


Cue = tuple[float, float | None, str, str]


def _steady(extra: Any) -> bool:
    """A live line still being revised (``SteadyState: false``) is left out, as the export leaves it."""
    return not (isinstance(extra, dict) and extra.get("SteadyState") is False)


async def track_cues(
    engine: AsyncEngine, task_id: str, subtask_id: str, offset: int = 0, limit: int | None = None
) -> list[Cue]:
    """A track's cues in time order: (start, end, source text, translation)."""
    query = (
        sa.select(segments.c.start_s, segments.c.end_s, segments.c.text, segments.c.translation, segments.c.extra)
        .where(
            segments.c.task_id == task_id,
            segments.c.subtask_id == subtask_id,
            segments.c.kind == "subtitle",
            segments.c.start_s.is_not(None),
        )
        .order_by(segments.c.start_s, segments.c.id)
        .offset(offset)
    )
    if limit is not None:
        query = query.limit(limit)
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return [
        (row.start_s, row.end_s, row.text or "", row.translation or "")
        for row in rows
        if _steady(row.extra) and math.isfinite(row.start_s)
    ]


# ---------------------------------------------------------------- other segments


def segment_kind_ok(kind: str) -> bool:
    """A kind ``/segments?kind=`` would take (the API's own rule)."""
    return kind in KNOWN_SEGMENT_KINDS or UNNAMED_SEGMENT_KIND.match(kind) is not None


def other_kinds(task: TaskDetail) -> list[tuple[str, int]]:
    """The segment kinds besides subtitle cues (those have the viewer), with their counts."""
    return sorted((kind, count) for kind, count in task.segment_counts.items() if kind != "subtitle")


@dataclass(frozen=True, slots=True)
class Lane:
    """One kind's row on the timeline: its first segments as blocks, in thousandths of the width."""

    kind: str
    count: int
    blocks: list[tuple[float, float, float, str]]  # x, width, start, label


def segment_label(segment: Segment) -> str:
    parts = (segment.label, segment.title, segment.text, segment.summary, segment.translation)
    return " · ".join(part for part in parts if part)[:300]


def _span(items: list[Segment]) -> float:
    ends = [value for item in items for value in (item.start, item.end) if value is not None and math.isfinite(value)]
    return max(ends, default=0.0)


async def timeline(engine: AsyncEngine, task: TaskDetail, kinds: list[tuple[str, int]]) -> tuple[float, list[Lane]]:
    """The timeline's length (the media's duration, else the latest segment end) and a lane per kind."""
    pages = {kind: await list_segments(engine, task.task_id, kind=kind, limit=TIMELINE_SEGMENTS) for kind, _ in kinds}
    meta = task.media_metadata if isinstance(task.media_metadata, dict) else {}
    length = _number(meta.get("Duration")) or max((_span(page.items) for page in pages.values()), default=0.0)
    if not length or not math.isfinite(length):
        return 0.0, []
    lanes = []
    for kind, count in kinds:
        blocks = []
        for item in pages[kind].items:
            if item.start is None or not math.isfinite(item.start):
                continue
            end = item.end if item.end is not None and math.isfinite(item.end) and item.end > item.start else item.start
            x = min(max(item.start / length, 0.0), 1.0) * 1000
            blocks.append(
                (round(x, 2), round(max(min(end / length, 1.0) * 1000 - x, 2.0), 2), item.start, segment_label(item))
            )
        lanes.append(Lane(kind, count, blocks))
    return length, lanes


async def segment_page(engine: AsyncEngine, task_id: str, kind: str, cursor: str | None) -> SegmentPage:
    return await list_segments(engine, task_id, kind=kind, limit=SEGMENTS_PER_PAGE, cursor=cursor)


# ---------------------------------------------------------------- notifications and deliveries


@dataclass(frozen=True, slots=True)
class ShownNotification:
    """A notification's row: its summary, not its body (megabytes maybe; the JSON viewer fetches it)."""

    detail: NotificationSummary


@dataclass
class Received:
    items: list[ShownNotification] = field(default_factory=list)
    next_cursor: str | None = None


async def received(engine: AsyncEngine, task_id: str, cursor: str | None) -> Received:
    """A page of the task's notifications, oldest first (their bodies are links: see ``ShownNotification``)."""
    try:
        page = await task_notifications(engine, task_id, limit=NOTIFICATIONS_PER_PAGE, cursor=cursor)
    except HTTPException as error:
        if error.status_code == 404:  # none journalled (a task left without its notifications)
            return Received()
        raise
    return Received([ShownNotification(summary) for summary in page.items], page.next_cursor)


async def task_deliveries(engine: AsyncEngine, task_id: str) -> list[DeliverySummary]:
    page = await list_deliveries(engine, task=task_id, limit=DELIVERIES_SHOWN)
    return page.items
