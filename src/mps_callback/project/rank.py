"""Which state wins: the rule that makes projection order-independent.

A task or subtask keeps the state of the notification with the highest key
``<rank>:<dedupe key>``: the rank says how far the work had got (a late PROCESSING never
overwrites FINISH), the dedupe key breaks ties by content, never by arrival. The result
depends only on the set of notifications, not on their order or their repetitions.
"""

from __future__ import annotations

from mps_callback.project.model import SubtaskProjection, TaskProjection

STATUS_RANK = {"WAITING": 0, "PROCESSING": 1, "SUCCESS": 2, "FAIL": 2, "FINISH": 2}


def task_key(projection: TaskProjection, dedupe_key: str) -> str:
    return f"{STATUS_RANK.get(projection.status, 1):04d}:{dedupe_key}"


def session_key(projection: TaskProjection, dedupe_key: str) -> str:
    """Rank for SessionId/SessionContext: any notification carrying them beats one that does not."""
    carries = projection.session_id is not None or projection.session_context is not None
    return f"{int(carries):04d}:{task_key(projection, dedupe_key)}"[:80]


def subtask_key(subtask: SubtaskProjection, dedupe_key: str) -> str:
    progress = min(max(subtask.progress or 0, 0), 999)
    return f"{STATUS_RANK.get(subtask.status or '', 1) * 1000 + progress:06d}:{dedupe_key}"
