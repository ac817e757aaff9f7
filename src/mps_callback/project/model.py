"""What one notification says about its task, independent of any database.

``parse`` builds these; the projector merges them into the tables; ``mps-callback parse``
prints them. Field names follow the tables' columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class OutputItem:
    """A file or URL a subtask produced, with where it lives and a URL to fetch it."""

    field: str  # where in the subtask it was found, e.g. "Output.SegmentSet[1].SegmentUrl"
    kind: str  # video, audio, image, subtitle, playlist, text, other
    storage: str  # cos, s3, vod, url, unknown
    path: str | None = None
    url: str | None = None
    bucket: str | None = None
    region: str | None = None
    file_id: str | None = None
    role: str | None = None  # main, subtitle, translation: what the compatibility view picks
    priority: int = 100


@dataclass(slots=True)
class SegmentItem:
    """A time-ranged (or listed) item: a subtitle line, a word, a highlight, a finding..."""

    kind: str
    start: float | None = None
    end: float | None = None
    text: str | None = None
    translation: str | None = None
    title: str | None = None
    summary: str | None = None
    label: str | None = None
    confidence: float | None = None
    keywords: list[Any] | None = None
    url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


#: ErrCodeExt values that say the work succeeded; any other one is an error.
SUCCESS_CODES_EXT = frozenset({"", "SUCCESS"})


def subtask_failed(status: str | None, err_code: int | None, err_code_ext: str | None) -> bool:
    """FAIL, or a SUCCESS that carries an error: MPS reports a failed step with Status SUCCESS and an
    ErrCode or ErrCodeExt. A subtask still PROCESSING has not failed yet, whatever it carries."""
    if status == "FAIL":
        return True
    return status == "SUCCESS" and (err_code not in (None, 0) or (err_code_ext or "") not in SUCCESS_CODES_EXT)


@dataclass(slots=True)
class SubtaskProjection:
    key: str  # stable identity of the subtask within its task
    group: str  # MediaProcess, AiAnalysis, AiRecognition, AiReview, QualityControl, SmartSubtitles, ...
    family: str  # the MPS result key: TranscodeTask, DeLogoTask, AsrFullTextRecognition, ...
    type: str | None  # MPS's own Type string of the item, when it has one
    mode: str  # "snapshot": a later state replaces it; "append": every notification adds to it (live)
    status: str | None = None
    err_code: int | None = None
    err_code_ext: str | None = None
    message: str | None = None
    progress: int | None = None
    definition: int | None = None
    begin_process_time: str | None = None
    finish_time: str | None = None
    input: Any = None
    output: Any = None
    outputs: list[OutputItem] = field(default_factory=list)
    segments: list[SegmentItem] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return subtask_failed(self.status, self.err_code, self.err_code_ext)


@dataclass(slots=True)
class TaskProjection:
    task_id: str
    kind: str
    event_type: str | None
    notification_type: str | None
    status: str
    err_code: int | None = None
    message: str | None = None
    input: Any = None
    input_location: str | None = None
    video_name: str | None = None
    metadata: Any = None
    session_id: str | None = None
    session_context: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    subtasks: list[SubtaskProjection] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        task_error = self.err_code not in (None, 0)
        return task_error or any(subtask.failed for subtask in self.subtasks)
