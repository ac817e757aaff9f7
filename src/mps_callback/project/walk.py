"""Generic walks over a result: every file it names, and every segment-like item in it.

Families differ in names (``StartTimeOffset``, ``StartPtsTime``, ``StartPTSTime``,
``Start``...), not in structure, so one walk with name tables serves them all; the family
table only says what kind of segment a list holds and which outputs matter most.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from mps_callback.project.family import Family
from mps_callback.project.model import OutputItem, SegmentItem
from mps_callback.project.storage import UNKNOWN, Storage, output_storage

START_KEYS = ("StartTimeOffset", "StartPtsTime", "StartPTSTime", "Start", "StartPtsOffset", "StartTime", "TimeOffset")
END_KEYS = ("EndTimeOffset", "EndPtsTime", "EndPTSTime", "End", "EndPtsOffset", "EndTime")
MS_KEYS = {"StartTimeMs": "start", "EndTimeMs": "end"}
TEXT_KEYS = ("Text", "Word", "Description", "Content", "TransSrc")
TRANSLATION_KEYS = ("Trans", "TransDst")
LABEL_KEYS = ("Label", "Name", "Tag", "Classification", "Type", "Category", "Id")
CONFIDENCE_KEYS = ("Confidence", "Score")
KEYWORD_KEYS = ("Keywords", "SegmentTags", "CategorySet", "KeywordSet", "Tags")
URL_KEYS = ("SegmentUrl", "Url", "HighlightUrl", "PicUrl", "CovImgUrl", "AudioUrl", "MindMapUrl")
CONSUMED = frozenset(
    START_KEYS + END_KEYS + TEXT_KEYS + TRANSLATION_KEYS + LABEL_KEYS + CONFIDENCE_KEYS + KEYWORD_KEYS
    + tuple(MS_KEYS) + ("Title", "Summary")
)

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
    ("subtitle", "subtitle"), ("webvtt", "subtitle"), ("image", "image"), ("cov", "image"), ("pic", "image"),
    ("snapshot", "image"), ("sprite", "image"), ("audio", "audio"), ("speaker", "audio"), ("video", "video"),
    ("script", "text"), ("mindmap", "image"), ("position", "text"),
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
                    location, file_kind(name, value), storage.type, path=value, url=storage.url(value, cdn_domains),
                    bucket=storage.bucket, region=storage.region, role=role, priority=priority,
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
        if isinstance(value, str) and value and (is_file_field(name) or (name.endswith("FileId") and name != "LibraryId")):
            yield f"{location}.{name}", name, value, storage
        elif isinstance(value, list) and is_file_field(name) and all(isinstance(v, str) for v in value):
            for index, item in enumerate(value):
                if item:
                    yield f"{location}.{name}[{index}]", name, item, storage
        elif isinstance(value, (dict, list)) and name not in ("OutputStorage", "Storage"):
            yield from _files(value, f"{location}.{name}", storage, depth + 1)


def find_segments(result: Any, family: Family, family_name: str) -> list[SegmentItem]:
    """Every segment-like item in ``result``: listed ones by the family table, time-ranged ones always."""
    found: list[SegmentItem] = []
    _segments(result, family, family_name, None, found)
    return found


def _segments(
    node: Any, family: Family, family_name: str, parent: SegmentItem | None, found: list[SegmentItem], depth: int = 0
) -> None:
    if depth > MAX_DEPTH:
        return
    if isinstance(node, list):
        for item in node:
            _segments(item, family, family_name, parent, found, depth + 1)
        return
    if not isinstance(node, dict):
        return
    for name, value in node.items():
        if not isinstance(value, list) or not value or not all(isinstance(item, dict) for item in value):
            if isinstance(value, dict):
                _segments(value, family, family_name, parent, found, depth + 1)
            continue
        kind = family.segments.get(name) or (f"{family_name}.{name}" if _time_ranged(value[0]) else None)
        for item in value:
            segment = segment_from(item, kind or "", parent)
            if kind:
                found.append(segment)
            _segments(item, family, family_name, segment, found, depth + 2)


def _time_ranged(item: dict[str, Any]) -> bool:
    return any(_number(item.get(key)) is not None for key in START_KEYS + tuple(MS_KEYS))


def segment_from(item: dict[str, Any], kind: str, parent: SegmentItem | None = None) -> SegmentItem:
    """One segment from one item; what it lacks (times, text, label) it takes from its parent item."""
    start = _first_number(item, START_KEYS)
    end = _first_number(item, END_KEYS)
    if start is None and _number(item.get("StartTimeMs")) is not None:
        start = item["StartTimeMs"] / 1000
    if end is None and _number(item.get("EndTimeMs")) is not None:
        end = item["EndTimeMs"] / 1000
    segment = SegmentItem(
        kind=kind,
        start=start,
        end=end,
        text=_first_text(item, TEXT_KEYS),
        translation=_first_text(item, TRANSLATION_KEYS),
        title=_first_text(item, ("Title",)),
        summary=_first_text(item, ("Summary",)),
        label=_first_text(item, LABEL_KEYS),
        confidence=_first_number(item, CONFIDENCE_KEYS),
        keywords=next((item[key] for key in KEYWORD_KEYS if isinstance(item.get(key), list) and item[key]), None),
        url=_first_text(item, URL_KEYS),
        extra={  # lists of objects are walked on their own (segments, or in the subtask's output)
            name: value
            for name, value in item.items()
            if name not in CONSUMED and value not in (None, "", [], {})
            and not (isinstance(value, list) and isinstance(value[0], dict))
        },
    )
    if parent is not None:
        segment.start = segment.start if segment.start is not None else parent.start
        segment.end = segment.end if segment.end is not None else parent.end
        segment.text = segment.text or parent.text
        segment.label = segment.label or parent.label
        segment.title = segment.title or parent.title
    return segment


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _first_number(item: dict[str, Any], keys: tuple[str, ...]) -> float | None:
    return next((number for key in keys if (number := _number(item.get(key))) is not None), None)


def _first_text(item: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    return next((item[key] for key in keys if isinstance(item.get(key), str) and item[key]), None)
