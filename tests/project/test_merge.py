"""The merge without a database: which state wins, live results, failures, bounded values.

``tests/project/test_projector.py`` checks the same rules end to end on every backend; here each
rule is checked alone, in any order, across batches as the projector would split them.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from itertools import permutations

import pytest

from mps_callback.project.merge import (
    APPEND,
    Claimed,
    StoredSubtask,
    SubtaskWin,
    TaskMerge,
    merge_task,
    starting_row,
)
from mps_callback.project.model import OutputItem, SegmentItem, SubtaskProjection, TaskProjection
from mps_callback.project.rank import Provenance
from mps_callback.project.rows import output_rows as rows_of_outputs
from mps_callback.project.rows import subtask_row, task_values
from mps_callback.store.tables import outputs, subtasks, tasks
from mps_callback.store.types import INT32, width

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def transcode(status: str | None = "SUCCESS", path: str = "/out/final.mp4", **fields: object) -> SubtaskProjection:
    sub = SubtaskProjection("MediaProcess/TranscodeTask/0", "MediaProcess", "TranscodeTask", "Transcode", "snapshot")
    sub.status = status
    sub.outputs = [OutputItem("Output.Path", "video", "cos", path=path)]
    for name, value in fields.items():
        setattr(sub, name, value)
    return sub


def vod(status: str = "FINISH", *subs: SubtaskProjection, **fields: object) -> TaskProjection:
    task = TaskProjection("task-1", "vod", "WorkflowTask", None, status, subtasks=list(subs))
    for name, value in fields.items():
        setattr(task, name, value)
    return task


def subtitle_line(text: str, start: float) -> SubtaskProjection:
    sub = SubtaskProjection("AiSmartSubtitleResult/SmartSubtitleResult", "AiSmartSubtitleResult", "X", None, APPEND)
    sub.segments = [SegmentItem("subtitle", start=start, end=start + 1, text=text)]
    return sub


def live(notification_type: str, *subs: SubtaskProjection) -> TaskProjection:
    status = "FINISH" if notification_type == "ProcessEof" else "PROCESSING"
    return TaskProjection("task-1", "live", None, notification_type, status, subtasks=list(subs))


def claimed(
    projection: TaskProjection, seconds: int, signature: str = "unsigned", confirmation: str | None = None
) -> Claimed:
    """A journal row received ``seconds`` after T0; its id follows its arrival."""
    at = T0 + timedelta(seconds=seconds)
    notification_id = seconds + 1
    provenance = Provenance(notification_id, at, signature, confirmation)
    return Claimed(notification_id, at, f"key-{notification_id}", {}, provenance, projection)


def merged(*batches: list[Claimed]) -> TaskMerge:
    """The task after each batch in turn, its state carried over as the tables would keep it."""
    merge: TaskMerge | None = None
    for batch in batches:
        if merge is None:
            first = min(batch, key=lambda item: item.id)
            assert first.projection is not None
            merge = TaskMerge(starting_row(first.projection, first.received_at), {})
        else:
            merge = carried(merge)
        merge_task(merge, batch)
    assert merge is not None
    return merge


def carried(merge: TaskMerge) -> TaskMerge:
    """The state the next batch starts from: the row and every subtask as now stored."""
    stored = dict(merge.stored_subtasks)
    for win in [*merge.new_subtasks.values(), *merge.replaced_subtasks.values()]:
        sub = win.subtask
        stored[win.subtask_id] = StoredSubtask(win.state_key, sub.status, sub.err_code, sub.err_code_ext)
    return TaskMerge(dict(merge.row), stored)


def subtask_now(merge: TaskMerge) -> SubtaskWin:
    [win] = merge.children.values()
    return win


# ---------------------------------------------------------------- status rank


def test_a_late_processing_never_overwrites_finish_in_one_batch_or_across_batches():
    finish = claimed(vod("FINISH", transcode("SUCCESS")), 0)
    late = claimed(vod("PROCESSING", transcode("PROCESSING", progress=50, path="/out/partial.mp4")), 5)
    for merge in (merged([finish, late]), merged([late, finish])):
        assert merge.row["status"] == "FINISH" and merge.row["notification_count"] == 2
        assert subtask_now(merge).subtask.status == "SUCCESS" and subtask_now(merge).source is finish
    across = merged([finish], [late])
    assert across.row["status"] == "FINISH" and across.row["notification_count"] == 2
    assert not across.new_subtasks and not across.replaced_subtasks and not across.producers()


def test_a_later_state_replaces_the_earlier_one_and_its_outputs():
    early = claimed(vod("PROCESSING", transcode("PROCESSING", progress=30, path="/out/partial.mp4")), 0)
    later = claimed(vod("PROCESSING", transcode("PROCESSING", progress=60, path="/out/partial.mp4")), 1)
    finish = claimed(vod("FINISH", transcode("SUCCESS")), 2)
    merge = merged([early], [later], [finish])
    assert merge.row["status"] == "FINISH" and merge.row["finished_at"] == finish.received_at
    [win] = merge.replaced_subtasks.values()
    assert win.source is finish and [o.path for o in win.subtask.outputs] == ["/out/final.mp4"]
    assert merge.producers() == [win]


@pytest.mark.parametrize("order", list(permutations(range(4))))
def test_the_result_does_not_depend_on_the_order_of_arrival_within_a_batch(order: tuple[int, ...]):
    items = [
        claimed(vod("WAITING"), 0),
        claimed(vod("PROCESSING", transcode("PROCESSING", progress=40)), 1),
        claimed(vod("PROCESSING", transcode("PROCESSING", progress=80)), 2),
        claimed(vod("FINISH", transcode("SUCCESS")), 3),
    ]
    reference = merged(items)
    merge = merged([items[i] for i in order])
    assert merge.row == reference.row
    assert subtask_now(merge).source is items[3]


def test_a_task_level_status_mps_never_sends_ranks_as_processing():
    """A forged task-level SUCCESS must not tie with FINISH and win as the earlier one."""
    forged = claimed(vod("SUCCESS", message="all good"), 0)
    finish = claimed(vod("FINISH", message="done"), 1)
    merge = merged([forged, finish])
    assert (merge.row["status"], merge.row["message"]) == ("FINISH", "done")


# ---------------------------------------------------------------- provenance


def test_a_stronger_proof_wins_even_when_it_comes_later():
    unsigned = claimed(vod("FINISH", message="unsigned forgery"), 0)
    verified = claimed(vod("FINISH", message="verified"), 1, signature="verified")
    confirmed = claimed(vod("FINISH", message="confirmed"), 2, signature="verified", confirmation="confirmed")
    assert merged([unsigned, verified]).row["message"] == "verified"
    assert merged([unsigned], [verified]).row["message"] == "verified"
    assert merged([verified, confirmed]).row["message"] == "confirmed"
    assert merged([confirmed], [unsigned, verified]).row["message"] == "confirmed"


def test_between_equally_strong_notifications_the_earlier_wins():
    """A replay with a captured Sign comes after the genuine one, whatever its content."""
    real = claimed(vod("FINISH", transcode("SUCCESS"), message="real"), 0)
    replay = claimed(vod("FINISH", transcode("SUCCESS", path="/evil.mp4"), message="forged", err_code=70000), 9)
    for merge in (merged([real, replay]), merged([real], [replay])):
        assert merge.row["message"] == "real" and not merge.row["failed"]
    assert subtask_now(merged([replay, real])).source is real


def test_a_notification_after_the_finish_adds_no_subtask_nor_session():
    finish = claimed(vod("FINISH", transcode("SUCCESS")), 0)
    extra = SubtaskProjection("AiAnalysis/CoverTask/0", "AiAnalysis", "CoverTask", None, "snapshot", status="FAIL")
    replay = claimed(vod("PROCESSING", extra, session_context="attacker"), 5)
    for merge in (merged([finish, replay]), merged([finish], [replay])):
        assert not merge.row["failed"] and merge.row.get("session_context") != "attacker"
        assert all(win.subtask.family != "CoverTask" for win in merge.new_subtasks.values())


# ---------------------------------------------------------------- live: append mode


def test_live_results_are_appended_and_the_eof_finishes():
    lines = [claimed(live("AiSmartSubtitleResult", subtitle_line(f"line {i}", 2.0 * i)), i) for i in range(3)]
    eof = claimed(live("ProcessEof"), 3)
    first = merged(lines[:2])
    [created] = first.new_subtasks.values()
    assert created.state_key == APPEND and len(first.appended) == 2 and not first.children
    assert sorted(win.subtask.segments[0].text or "" for win in first.producers()) == ["line 0", "line 1"]
    second = merged(lines[:2], [lines[2], eof])
    assert not second.new_subtasks and [win.source for win in second.appended] == [lines[2]]
    assert second.row["status"] == "FINISH" and second.row["notification_count"] == 4


def test_a_live_task_keeps_taking_results_after_its_eof():
    """MPS may deliver the last results after ProcessEof."""
    eof = claimed(live("ProcessEof"), 0)
    last = claimed(live("AiSmartSubtitleResult", subtitle_line("last words", 10.0)), 1)
    for merge in (merged([eof, last]), merged([eof], [last])):
        assert [win.source for win in merge.appended] == [last] and merge.row["status"] == "FINISH"


# ---------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("status", "fields", "failed"),
    [
        ("FAIL", {"err_code": 70000}, True),
        ("SUCCESS", {"err_code": 30010}, True),  # MPS reports a failed step as SUCCESS with an ErrCode
        ("SUCCESS", {"err_code_ext": "InvalidInput"}, True),
        ("SUCCESS", {"err_code_ext": "SUCCESS"}, False),
        ("SUCCESS", {"err_code": 0, "err_code_ext": ""}, False),
        ("PROCESSING", {"err_code": 70000}, False),  # not failed yet, whatever it carries
    ],
)
def test_a_failed_subtask_fails_the_task(status: str, fields: dict[str, object], failed: bool):
    merge = merged([claimed(vod("FINISH", transcode(status, **fields)), 0)])
    assert merge.row["failed"] is failed


def test_failure_follows_the_subtask_as_it_now_stands():
    running = claimed(vod("PROCESSING", transcode("PROCESSING", progress=10)), 0)
    failing = claimed(vod("FINISH", transcode("FAIL", err_code=70000)), 1)
    assert not merged([running]).row["failed"]
    assert merged([running], [failing]).row["failed"]
    assert merged([running, failing]).row["failed"]


def test_a_stored_failed_subtask_keeps_the_task_failed_whatever_the_batch_adds():
    failing = claimed(vod("PROCESSING", transcode("FAIL", err_code=70000)), 0)
    other = SubtaskProjection("AiAnalysis/CoverTask/0", "AiAnalysis", "CoverTask", None, "snapshot", status="SUCCESS")
    finish = claimed(vod("FINISH", other), 1)
    assert merged([failing], [finish]).row["failed"]


def test_a_task_error_code_fails_the_task():
    assert merged([claimed(vod("FINISH", err_code=70000), 0)]).row["failed"]
    assert not merged([claimed(vod("FINISH", err_code=0), 0)]).row["failed"]


# ---------------------------------------------------------------- progress and bounded values


def test_a_forged_progress_cannot_outrank_a_finished_subtask():
    real = claimed(vod("FINISH", transcode("SUCCESS")), 0)
    forged = claimed(vod("PROCESSING", transcode("PROCESSING", progress=999, message="forged")), 1, "verified")
    assert subtask_now(merged([real, forged])).source is real
    assert not merged([real], [forged]).producers()
    [win] = merged([forged], [real]).replaced_subtasks.values()
    assert win.source is real


def test_progress_only_counts_while_running_and_within_0_to_100():
    ninety = claimed(vod("PROCESSING", transcode("PROCESSING", progress=90)), 0)
    hundred = claimed(vod("PROCESSING", transcode("PROCESSING", progress=100)), 1)
    huge = claimed(vod("PROCESSING", transcode("PROCESSING", progress=10**6)), 2)
    # 10**6 clamps to 100: it ties with the real 100 and the earlier one wins, not the larger number
    assert subtask_now(merged([ninety, hundred, huge])).source is hundred
    assert subtask_now(merged([ninety], [huge])).source is huge
    done = claimed(vod("FINISH", transcode("SUCCESS")), 3)
    done_at_100 = claimed(vod("FINISH", transcode("SUCCESS", progress=100)), 4)
    assert subtask_now(merged([done, done_at_100])).source is done


def test_rows_fit_their_columns_and_keep_failures_visible():
    sub = transcode(
        "SUCCESS" + "S" * 100,
        key="k" * 2000,
        progress=999,
        err_code=2**40,
        definition=2**70,
        err_code_ext="E" * 1000,
    )
    sub.outputs = [OutputItem("Output.Path", "video", "cos", path="/x", bucket="b" * 1000, file_id="f" * 1000)]
    task = vod("FINISH" + "H" * 100, sub, err_code=-(2**50))
    merge = merged([claimed(task, 0)])
    [win] = merge.new_subtasks.values()
    row = subtask_row("task-1", win)
    assert len(row["key"]) == width(subtasks.c.key) == 512
    assert len(row["status"]) == width(subtasks.c.status) and len(row["err_code_ext"]) == width(subtasks.c.err_code_ext)
    assert (row["progress"], row["err_code"], row["definition"]) == (100, INT32, None)
    [output] = rows_of_outputs("task-1", win)
    assert len(output["bucket"]) == width(outputs.c.bucket) and len(output["file_id"]) == width(outputs.c.file_id)
    assert output["path"] == "/x"
    with pytest.raises(TypeError, match="no width"):  # TEXT: never cut
        width(outputs.c.url)
    values = task_values(merge.row)
    assert values["err_code"] == -INT32 - 1 and merge.row["failed"]  # clamped, still an error
    assert len(values["status"]) == width(tasks.c.status) == 32 and "task_id" not in values


def test_the_merge_needs_no_database_library():
    """merge.py is pure: importing it must not import SQLAlchemy."""
    check = "import sys, mps_callback.project.merge; print(any(m.startswith('sqlalchemy') for m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
