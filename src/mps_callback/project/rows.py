"""The merge's result as table rows: every bounded value fitted to its column in ``store/tables.py``.

MPS's own strings are short, so a value too long for its column can only come from a hostile
or broken body: it is cut to the column's width (read from the table, never repeated here) and
an integer is kept within the column, so one odd field never fails the whole write.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from mps_callback.project.merge import SubtaskWin
from mps_callback.project.model import OutputItem, SegmentItem
from mps_callback.project.rank import clamp_progress
from mps_callback.store.tables import outputs, segments, subtasks, tasks
from mps_callback.store.types import INT32, INT64, saturated, whole_number, width


def clip(value: Any, column: sa.Column[Any]) -> str | None:
    """``value`` as text cut to ``column``'s width."""
    return None if value is None else str(value)[: width(column)]


def task_values(row: dict[str, Any]) -> dict[str, Any]:
    """A merged task row as it is written back, its key (``task_id``) aside."""
    values = {key: value for key, value in row.items() if key != "task_id"}
    values.update(status=clip(row["status"], tasks.c.status), err_code=saturated(row["err_code"], INT32))
    return values


def subtask_row(task_id: str, win: SubtaskWin) -> dict[str, Any]:
    sub = win.subtask
    return {
        "id": win.subtask_id,
        "task_id": task_id,
        "key": clip(sub.key, subtasks.c.key),
        "group_name": clip(sub.group, subtasks.c.group_name),
        "family": clip(sub.family, subtasks.c.family),
        "type": clip(sub.type, subtasks.c.type),
        "mode": sub.mode,
        "status": clip(sub.status, subtasks.c.status),
        "err_code": saturated(sub.err_code, INT32),
        "err_code_ext": clip(sub.err_code_ext, subtasks.c.err_code_ext),
        "message": sub.message,
        "progress": clamp_progress(whole_number(sub.progress, INT32)),
        "definition": whole_number(sub.definition, INT64),
        "begin_process_time": clip(sub.begin_process_time, subtasks.c.begin_process_time),
        "finish_time": clip(sub.finish_time, subtasks.c.finish_time),
        "input": sub.input,
        "output": sub.output,
        "state_key": win.state_key,
        "notification_id": win.source.id,
    }


def output_rows(task_id: str, win: SubtaskWin) -> list[dict[str, Any]]:
    return [_output_row(task_id, win, seq, item) for seq, item in enumerate(win.subtask.outputs)]


def segment_rows(task_id: str, win: SubtaskWin) -> list[dict[str, Any]]:
    return [_segment_row(task_id, win, seq, item) for seq, item in enumerate(win.subtask.segments)]


def _output_row(task_id: str, win: SubtaskWin, seq: int, item: OutputItem) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "subtask_id": win.subtask_id,
        "source": win.source.dedupe_key,
        "seq": seq,
        "field": item.field,
        "kind": item.kind,
        "storage": item.storage,
        "bucket": clip(item.bucket, outputs.c.bucket),
        "region": clip(item.region, outputs.c.region),
        "path": item.path,
        "url": item.url,
        "file_id": clip(item.file_id, outputs.c.file_id),
        "role": item.role,
        "priority": item.priority,
    }


def _segment_row(task_id: str, win: SubtaskWin, seq: int, item: SegmentItem) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "subtask_id": win.subtask_id,
        "source": win.source.dedupe_key,
        "seq": seq,
        "kind": clip(item.kind, segments.c.kind),
        "start_s": item.start,
        "end_s": item.end,
        "text": item.text,
        "translation": item.translation,
        "title": item.title,
        "summary": item.summary,
        "label": item.label,
        "confidence": item.confidence,
        "keywords": item.keywords,
        "url": item.url,
        "extra": item.extra or None,
    }
