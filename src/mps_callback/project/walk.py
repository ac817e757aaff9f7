"""Generic walks over a result: every file it names, and every segment-like item in it.

Families differ in names (``StartTimeOffset``, ``StartPtsTime``, ``StartPTSTime``,
``Start``...), not in structure, so one walk with name tables serves them all; the family
table only says what kind of segment a list holds and which outputs matter most.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from mps_callback.project.family import Family
from mps_callback.project.model import OutputItem, SegmentItem
from mps_callback.storage import UNKNOWN, Storage, output_storage

START_KEYS = (
    "StartTimeOffset",
    "StartPtsTime",
    "StartPTSTime",
    "Start",
    "StartPtsOffset",
    "StartTime",
    "TimeOffset",
    "Timestamp",
)
END_KEYS = ("EndTimeOffset", "EndPtsTime", "EndPTSTime", "End", "EndPtsOffset", "EndTime")
MS_KEYS = {"StartTimeMs": "start", "EndTimeMs": "end"}
#: Lists of points in time: the item spans its first to its last point.
POINT_SET_KEYS = ("TimestampSet",)
#: Wall-clock times (ISO 8601 strings): kept as they came, and as UTC ``start_at``/``end_at`` in ``extra``.
WALL_START_KEYS = ("BeginTime", "StartTime", "DateTime")
WALL_END_KEYS = ("EndTime",)
WALL_SET_KEYS = ("DateTimeSet",)
WALL_KEYS = frozenset(WALL_START_KEYS + WALL_END_KEYS + WALL_SET_KEYS)
TEXT_KEYS = ("Text", "Word", "Description", "Content", "TransSrc")
TRANSLATION_KEYS = ("Trans", "TransDst")
LABEL_KEYS = ("Label", "Name", "Tag", "Classification", "Type", "Category", "Id")
CONFIDENCE_KEYS = ("Confidence", "Score")
KEYWORD_KEYS = ("Keywords", "SegmentTags", "CategorySet", "KeywordSet", "Tags")
URL_KEYS = ("SegmentUrl", "Url", "HighlightUrl", "PicUrl", "CovImgUrl", "AudioUrl", "MindMapUrl")

#: How deep the walks look. MPS's results are at most 15 levels deep; deeper parts of a
#: hostile body stay in the raw JSON and cannot exhaust the stack.
MAX_DEPTH = 64

FILE_SUFFIXES = ("Path", "Url", "Uri", "PathSet", "UrlSet", "Paths", "Urls")
FILE_NAMES = frozenset({"VoiceClonedVideo", "VoiceClonedMarkFile"})
NOT_FILES = frozenset({"OutputObjectPath", "KeyServerUrl", "SegmentObjectName"})

EXTENSION_KINDS = {
    "video": (".mp4", ".mov", ".flv", ".ts", ".mkv", ".webm", ".avi", ".m4v", ".3gp", ".wmv"),
    "audio": (".mp3", ".aac", ".m4a", ".wav", ".flac", ".ogg", ".opus", ".wma"),
    "image": (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".heic", ".avif"),
    "subtitle": (".vtt", ".srt", ".ass", ".ssa", ".ttml", ".lrc"),
    "playlist": (".m3u8", ".mpd"),
    "text": (".txt", ".json", ".xml", ".md", ".csv", ".html"),
}
NAME_KINDS = (
    ("subtitle", "subtitle"),
    ("webvtt", "subtitle"),
    ("image", "image"),
    ("cov", "image"),
    ("pic", "image"),
    ("snapshot", "image"),
    ("sprite", "image"),
    ("audio", "audio"),
    ("speaker", "audio"),
    ("video", "video"),
    ("script", "text"),
    ("mindmap", "image"),
    ("position", "text"),
)


def file_kind(field_name: str, value: str) -> str:
    """video, audio, image, subtitle, playlist, text or other: by extension, else by field name."""
    suffix = value.split("?", 1)[0].lower()
    for kind, extensions in EXTENSION_KINDS.items():
        if suffix.endswith(extensions):
            return kind
    lowered = field_name.lower()
    return next((kind for needle, kind in NAME_KINDS if needle in lowered), "other")


def is_file_field(name: str) -> bool:
    return name not in NOT_FILES and (name.endswith(FILE_SUFFIXES) or name in FILE_NAMES)


def find_outputs(
    result: Any, family: Family, default: Storage | None, cdn_domains: Mapping[str, str], prefix: str = "Output"
) -> list[OutputItem]:
    """Every file or URL in ``result``, each with the storage nearest to it and a resolved URL."""
    found: list[OutputItem] = []
    for location, name, value, storage in _files(result, prefix, default or UNKNOWN):
        role, priority = family.roles.get(name, (None, 100))
        if name.endswith("FileId"):
            found.append(OutputItem(location, file_kind(name, ""), "vod", file_id=value, role=role, priority=priority))
        elif value.startswith(("http://", "https://")):
            found.append(OutputItem(location, file_kind(name, value), "url", url=value, role=role, priority=priority))
        else:
            found.append(
                OutputItem(
                    location,
                    file_kind(name, value),
                    storage.type,
                    path=value,
                    url=storage.url(value, cdn_domains),
                    bucket=storage.bucket,
                    region=storage.region,
                    role=role,
                    priority=priority,
                )
            )
    return found


def _files(node: Any, location: str, storage: Storage, depth: int = 0) -> Iterator[tuple[str, str, str, Storage]]:
    if depth > MAX_DEPTH:
        return
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from _files(item, f"{location}[{index}]", storage, depth + 1)
        return
    if not isinstance(node, dict):
        return
    storage = output_storage(node.get("OutputStorage")) or output_storage(node.get("Storage")) or storage
    for name, value in node.items():
        if (
            isinstance(value, str)
            and value
            and (is_file_field(name) or (name.endswith("FileId") and name != "LibraryId"))
        ):
            yield f"{location}.{name}", name, value, storage
        elif isinstance(value, list) and is_file_field(name) and all(isinstance(v, str) for v in value):
            for index, item in enumerate(value):
                if item:
                    yield f"{location}.{name}[{index}]", name, item, storage
        elif isinstance(value, (dict, list)) and name not in ("OutputStorage", "Storage"):
            yield from _files(value, f"{location}.{name}", storage, depth + 1)


def find_segments(result: Any, family: Family, family_name: str) -> list[SegmentItem]:
    """Every segment-like item in ``result``: listed ones by the family table, time-ranged ones always,
    and those the family derives from single fields (``Family.derive``, e.g. head and tail offsets)."""
    found: list[SegmentItem] = []
    _segments(result, family, family_name, None, False, found)
    if family.derive is not None and isinstance(result, dict):
        found.extend(family.derive(result))
    return found


def remainder(result: Any, family: Family, family_name: str, depth: int = 0) -> Any:
    """``result`` without the lists that became segments: what only the raw result would keep.

    Live results are appended notification after notification and keep no raw output; this is
    what their notification said beyond its segments and files (``RecordOver``, a result's Type).
    """
    if depth > MAX_DEPTH:
        return None
    if isinstance(result, list):
        items = [remainder(item, family, family_name, depth + 1) for item in result]
        return [item for item in items if item not in (None, "", [], {})]
    if not isinstance(result, dict):
        return result
    kept = {}
    for name, value in result.items():
        if _segment_kind(name, value, family, family_name):
            continue
        rest = remainder(value, family, family_name, depth + 1)
        if rest not in (None, "", [], {}):
            kept[name] = rest
    return kept


def _segment_kind(name: str, value: Any, family: Family, family_name: str) -> str | None:
    """The segment kind of the list ``name``, or None when its items are not segments."""
    if not isinstance(value, list) or not value or not all(isinstance(item, dict) for item in value):
        return None
    return family.segments.get(name) or (f"{family_name}.{name}" if _time_ranged(value[0]) else None)


def _segments(
    node: Any,
    family: Family,
    family_name: str,
    parent: SegmentItem | None,
    parent_kept: bool,
    found: list[SegmentItem],
    depth: int = 0,
) -> None:
    if depth > MAX_DEPTH:
        return
    if isinstance(node, list):
        for item in node:
            _segments(item, family, family_name, parent, parent_kept, found, depth + 1)
        return
    if not isinstance(node, dict):
        return
    for name, value in node.items():
        if not isinstance(value, list) or not value or not all(isinstance(item, dict) for item in value):
            if isinstance(value, dict):
                _segments(value, family, family_name, parent, parent_kept, found, depth + 1)
            continue
        kind = _segment_kind(name, value, family, family_name)
        for item in value:
            segment = segment_from(item, kind or "", parent, parent_kept)
            if kind:
                found.append(segment)
            _segments(item, family, family_name, segment, bool(kind), found, depth + 2)


def _time_ranged(item: dict[str, Any]) -> bool:
    return any(_number(item.get(key)) is not None for key in START_KEYS + tuple(MS_KEYS)) or any(
        _numbers(item.get(key)) for key in POINT_SET_KEYS
    )


class _Picker:
    """Takes fields of one item for the segment's columns, remembering which it took verbatim."""

    def __init__(self, item: dict[str, Any]) -> None:
        self.item = item
        self.used: set[str] = set()

    def number(self, keys: tuple[str, ...]) -> float | None:
        if self.item.keys().isdisjoint(keys):  # the usual case, settled in C: a segment has a few fields
            return None
        for key in keys:
            number = _number(self.item.get(key))
            if number is not None:
                self.used.add(key)
                return number
        return None

    def text(self, keys: tuple[str, ...]) -> str | None:
        value = self._first(keys, str)
        return value if isinstance(value, str) else None

    def keywords(self) -> list[Any] | None:
        value = self._first(KEYWORD_KEYS, list)
        return value if isinstance(value, list) else None

    def _first(self, keys: tuple[str, ...], kind: type) -> Any:
        """The first non-empty value of ``kind`` under ``keys``, marked used."""
        if self.item.keys().isdisjoint(keys):
            return None
        for key in keys:
            value = self.item.get(key)
            if isinstance(value, kind) and value:
                self.used.add(key)
                return value
        return None

    def extra(self) -> dict[str, Any]:
        """Every field no column took verbatim (lists of objects are walked on their own: segments,
        or the subtask's raw output)."""
        return {
            name: value
            for name, value in self.item.items()
            if name not in self.used
            and value not in (None, "", [], {})
            and not (isinstance(value, list) and isinstance(value[0], dict))
        }


def segment_from(
    item: dict[str, Any], kind: str, parent: SegmentItem | None = None, parent_kept: bool = False
) -> SegmentItem:
    """One segment from one item.

    What it lacks it takes from its parent item: times always; text, label and title only from
    a parent that is not a segment itself (a paragraph does not repeat its description's text).
    Fields not taken verbatim into a column stay in ``extra``, so nothing of the item is lost.
    """
    pick = _Picker(item)
    start, end = _times(item, pick)
    segment = SegmentItem(
        kind=kind,
        start=start,
        end=end,
        text=pick.text(TEXT_KEYS),
        translation=pick.text(TRANSLATION_KEYS),
        title=pick.text(("Title",)),
        summary=pick.text(("Summary",)),
        label=pick.text(LABEL_KEYS),
        confidence=pick.number(CONFIDENCE_KEYS),
        keywords=pick.keywords(),
        url=pick.text(URL_KEYS),
    )
    segment.extra = {**pick.extra(), **_wall_clock(item)}
    if parent is not None:
        segment.start = segment.start if segment.start is not None else parent.start
        segment.end = segment.end if segment.end is not None else parent.end
        if not parent_kept:
            segment.text = segment.text or parent.text
            segment.label = segment.label or parent.label
            segment.title = segment.title or parent.title
    return segment


def _times(item: dict[str, Any], pick: _Picker) -> tuple[float | None, float | None]:
    """Start and end in seconds: offsets, milliseconds, or a set of points (first to last)."""
    start = pick.number(START_KEYS)
    end = pick.number(END_KEYS)
    if start is None and (ms := _number(item.get("StartTimeMs"))) is not None:
        start = ms / 1000
    if end is None and (ms := _number(item.get("EndTimeMs"))) is not None:
        end = ms / 1000
    points = next((numbers for key in POINT_SET_KEYS if (numbers := _numbers(item.get(key)))), None)
    if start is None and points:
        start, end = min(points), max(points)
    elif start is not None and end is None and "Timestamp" in pick.used:
        end = start  # a point in time: an empty range, found by any query that covers it
    return start, end


def _wall_clock(item: dict[str, Any]) -> dict[str, str]:
    """``start_at``/``end_at``: the item's wall-clock times as ISO 8601 UTC (as given when without a zone)."""
    found: dict[str, str] = {}
    if item.keys().isdisjoint(WALL_KEYS):
        return found
    start = next((at for key in WALL_START_KEYS if (at := iso_instant(item.get(key)))), None)
    end = next((at for key in WALL_END_KEYS if (at := iso_instant(item.get(key)))), None)
    points = sorted(at for key in WALL_SET_KEYS for value in _list(item.get(key)) if (at := iso_instant(value)))
    if start is None and points:
        start, end = points[0], points[-1]
    if start:
        found["start_at"] = start
    if end:
        found["end_at"] = end
    return found


def iso_instant(value: Any) -> str | None:
    """An ISO 8601 time as UTC (``2025-01-02T03:04:05Z``), or as given when it names no zone."""
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.isoformat()
    try:
        return parsed.astimezone(UTC).isoformat().replace("+00:00", "Z")
    except OverflowError:  # 0001-01-01T00:00:00+14:00 lies before year 1 in UTC: kept as given
        return parsed.isoformat()


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _numbers(value: Any) -> list[float]:
    return [number for item in _list(value) if (number := _number(item)) is not None]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
