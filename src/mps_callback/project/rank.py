"""Which state wins: the rule that makes projection independent of processing order.

A task or subtask keeps the state of the notification with the highest key. The key is
built only from facts the sender cannot choose freely:
1. the rank: how far the work had got (a late PROCESSING never overwrites FINISH); a
   running subtask adds its Progress, clamped to 0-100 (a forged ``"Progress": 999`` outranks
   nothing), a finished one nothing;
2. the strength of the proof: confirmed by the MPS API > verified signature > unsigned;
3. the earliest received (a replay with a captured Sign comes after the genuine one);
4. the lowest journal id.
Never the content: a SHA-256 of the body can be ground by a sender to win a tie.
Every part is fixed-width, so comparing keys as strings compares the tuples.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mps_callback.project.model import SubtaskProjection, TaskProjection

#: A task is WAITING, PROCESSING or FINISH; anything else ranks as PROCESSING (a forged task-level
#: "SUCCESS" must not tie with FINISH and win as the earlier one).
TASK_STATUS_RANK = {"WAITING": 0, "PROCESSING": 1, "FINISH": 2}
STATUS_RANK = {"WAITING": 0, "PROCESSING": 1, "SUCCESS": 2, "FAIL": 2, "FINISH": 2}
_LATEST_MICROSECONDS = 10**17 - 1  # microseconds since 1970 stay below this until the year 5138
_LARGEST_ID = 10**19 - 1  # above any BIGINT id


@dataclass(frozen=True, slots=True)
class Provenance:
    """What the journal knows about a notification, as opposed to what it says."""

    notification_id: int
    received_at: datetime
    signature: str
    confirmation: str | None

    def strength(self) -> int:
        if self.confirmation == "confirmed":
            return 3
        return 2 if self.signature == "verified" else 1

    def tiebreak(self) -> str:
        """Stronger first, then earlier, then the lower id, as one ascending string."""
        microseconds = int(self.received_at.timestamp() * 1_000_000)
        return f"{self.strength()}:{_LATEST_MICROSECONDS - microseconds:017d}:{_LARGEST_ID - self.notification_id:019d}"


def task_key(projection: TaskProjection, provenance: Provenance) -> str:
    return f"{TASK_STATUS_RANK.get(projection.status, 1):04d}:{provenance.tiebreak()}"


def session_key(projection: TaskProjection, provenance: Provenance) -> str:
    """Rank for SessionId/SessionContext: any notification carrying them beats one that does not."""
    carries = projection.session_id is not None or projection.session_context is not None
    return f"{int(carries):04d}:{task_key(projection, provenance)}"


def clamp_progress(progress: int | None) -> int | None:
    """MPS's Progress is a percentage; anything outside 0-100 is clamped, here and in the stored row."""
    return None if progress is None else min(max(progress, 0), 100)


#: Subtask states past which Progress says nothing more: a SUCCESS with ``"Progress": 100`` must
#: not outrank the SUCCESS MPS sent without one (a replayed Sign on an edited body would).
TERMINAL = frozenset({"SUCCESS", "FAIL", "FINISH"})


def subtask_key(subtask: SubtaskProjection, provenance: Provenance) -> str:
    status = subtask.status or ""
    progress = 0 if status in TERMINAL else clamp_progress(subtask.progress) or 0
    return f"{STATUS_RANK.get(status, 1) * 1000 + progress:06d}:{provenance.tiebreak()}"
