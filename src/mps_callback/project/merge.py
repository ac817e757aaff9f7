"""The merge: a task's stored state and a batch of its notifications -> the task's new state.

Pure: no database here (``projector.py`` loads the state and writes the result through
``rows.py``), so the rules that make projection independent of arrival order are tested on
their own. The rules themselves are ``rank.py``'s: a task or subtask keeps the state with the
highest key, so a late PROCESSING never overwrites a FINISH and a stronger proof wins.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mps_callback.project.model import SubtaskProjection, TaskProjection, subtask_failed
from mps_callback.project.rank import Provenance, session_key, subtask_key, task_key

#: The state key of a live (append) subtask: every notification adds to it, none replaces it.
APPEND = "append"


@dataclass(slots=True)
class Claimed:
    """One journal row taken for projection: what it says (``projection``) and what the journal knows."""

    id: int
    received_at: datetime
    dedupe_key: str
    body: dict[str, Any]
    provenance: Provenance
    projection: TaskProjection | None = None
    #: Projected before and pending again because ``reproject`` rebuilt its task (announces nothing).
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class StoredSubtask:
    """What the merge needs of a subtask already in the table: its rank, and whether it failed."""

    state_key: str
    status: str | None
    err_code: int | None
    err_code_ext: str | None

    @property
    def failed(self) -> bool:
        return subtask_failed(self.status, self.err_code, self.err_code_ext)


@dataclass(frozen=True, slots=True)
class SubtaskWin:
    """A subtask state that creates or replaces the stored one, with the notification it came from."""

    subtask_id: str
    subtask: SubtaskProjection
    source: Claimed
    state_key: str

    @property
    def failed(self) -> bool:
        return self.subtask.failed


@dataclass(slots=True)
class TaskMerge:
    """One task's state while a batch is merged into it."""

    row: dict[str, Any]  # the task's row, as stored (or ``starting_row``) and then merged into
    stored_subtasks: dict[str, StoredSubtask]  # subtask id -> its stored state
    new_subtasks: dict[str, SubtaskWin] = field(default_factory=dict)
    replaced_subtasks: dict[str, SubtaskWin] = field(default_factory=dict)
    children: dict[str, SubtaskWin] = field(default_factory=dict)  # snapshot winners: their outputs replace
    appended: list[SubtaskWin] = field(default_factory=list)  # live results: their outputs are added
    #: Where the batch will leave the task, known before any of it is merged (so that whether a
    #: notification came after the finish never depends on how notifications were batched).
    finished_at: datetime | None = None
    winner: str = ""
    live: bool = False

    def producers(self) -> list[SubtaskWin]:
        """The subtask states whose outputs and segments the batch writes."""
        return [*self.children.values(), *self.appended]

    def settle(self, items: list[Claimed]) -> None:
        """Work out the task's finish and winning state over the stored row and the whole batch."""
        row = self.row
        finishes = [item.received_at for item in items if item.projection and item.projection.status == "FINISH"]
        self.finished_at = min([*finishes, *([row["finished_at"]] if row["finished_at"] else [])], default=None)
        keyed = [(task_key(item.projection, item.provenance), item.projection) for item in items if item.projection]
        best_key, best = max(keyed, key=lambda pair: pair[0])
        if best_key > row["state_key"]:
            self.winner, self.live = best_key, best.kind == "live"
        else:
            self.winner, self.live = row["state_key"], row["kind"] == "live"


def starting_row(projection: TaskProjection, received_at: datetime) -> dict[str, Any]:
    """The row a task starts from: every merge wins over it."""
    return {
        "task_id": projection.task_id,
        "kind": projection.kind,
        "status": "PROCESSING",
        "failed": False,
        "first_received_at": received_at,
        "last_received_at": received_at,
        "finished_at": None,
        "notification_count": 0,
        "state_key": "",
        "session_key": "",
    }


def merge_task(merge: TaskMerge, items: list[Claimed]) -> None:
    """Merge one task's notifications of a batch (each with its projection) into ``merge``.

    In rank order, lowest first, so the result does not depend on the order they came in.
    """
    merge.settle(items)
    ranked = [
        (task_key(projection, item.provenance), item, projection) for item in items if (projection := item.projection)
    ]
    for state, item, projection in sorted(ranked, key=lambda triple: triple[0]):
        _merge_notification(merge, item, projection, state)
    merge.row["failed"] = _failed(merge)


def subtask_id(task_id: str, key: str) -> str:
    """A subtask's id: stable across reprojection, the same whichever notification created it."""
    return hashlib.blake2b(f"{task_id}\0{key}".encode(), digest_size=16).hexdigest()


def _merge_notification(merge: TaskMerge, item: Claimed, projection: TaskProjection, state: str) -> None:
    """``item`` (whose projection is ``projection``, ranked ``state``) into the task and its subtasks."""
    row = merge.row
    row["notification_count"] += 1
    row["first_received_at"] = min(row["first_received_at"], item.received_at)
    row["last_received_at"] = max(row["last_received_at"], item.received_at)
    if projection.status == "FINISH":
        finished = row["finished_at"]
        row["finished_at"] = item.received_at if finished is None else min(finished, item.received_at)
    if state > row["state_key"]:
        row.update(
            kind=projection.kind,
            event_type=projection.event_type,
            status=projection.status,
            err_code=projection.err_code,
            message=projection.message,
            input=projection.input,
            input_location=projection.input_location,
            video_name=projection.video_name,
            media_metadata=projection.metadata,
            extra=projection.extra or None,
            state_key=state,
        )
    if _after_the_finish(merge, item, state):
        return
    session = session_key(projection, item.provenance)
    if session > row["session_key"]:
        row.update(session_id=projection.session_id, session_context=projection.session_context, session_key=session)
    for sub in projection.subtasks:
        _merge_subtask(merge, sub, item)


def _after_the_finish(merge: TaskMerge, item: Claimed, state: str) -> bool:
    """Whether ``item`` came after its file task finished and is not the state that won.

    MPS sends nothing new about a finished file task (a retry is the same body, deduplicated),
    so such a notification may only be a replay with a captured Timestamp/Sign: it must not
    add, replace or fail subtasks, nor fill in the session. A live task keeps taking results
    and its session: MPS may deliver the last of them after ProcessEof.
    """
    finished = merge.finished_at
    return not merge.live and finished is not None and item.received_at > finished and state != merge.winner


def _merge_subtask(merge: TaskMerge, sub: SubtaskProjection, item: Claimed) -> None:
    sid = subtask_id(merge.row["task_id"], sub.key)
    known = merge.stored_subtasks.get(sid)
    if sub.mode == APPEND:
        if known is None and sid not in merge.new_subtasks:
            merge.new_subtasks[sid] = SubtaskWin(sid, sub, item, APPEND)
        merge.appended.append(SubtaskWin(sid, sub, item, APPEND))
        return
    state = subtask_key(sub, item.provenance)
    current = merge.new_subtasks.get(sid) or merge.replaced_subtasks.get(sid) or known
    if current is not None and state <= current.state_key:
        return
    win = SubtaskWin(sid, sub, item, state)
    if known is None:
        merge.new_subtasks[sid] = win
    else:
        merge.replaced_subtasks[sid] = win
    merge.children[sid] = win


def _failed(merge: TaskMerge) -> bool:
    """The task has an ErrCode, or one of its subtasks (as it now stands) failed: ``subtask_failed``."""
    states: dict[str, StoredSubtask | SubtaskWin] = {
        **merge.stored_subtasks,
        **merge.new_subtasks,
        **merge.replaced_subtasks,
    }
    return merge.row["err_code"] not in (None, 0) or any(state.failed for state in states.values())
