"""Every value a notification carries is reachable from its projection, and every time is kept.

Bodies are generated from the Tencent SDK's own model classes (``tests/project/fidelity.py``),
every field filled, so a field MPS documents and the projection drops shows up here.
``tests/fixtures/reference/fields-*.txt`` list the same trees for reading.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from mps_callback.project.parse import parse
from tests.support.fidelity import figures, leaves, live_bodies, vod_bodies

SEEDS = (11, 23, 47)
THRESHOLD = 0.999
REFERENCE = Path(__file__).parents[1] / "fixtures" / "reference"
SCALARS = (": str", ": int", ": float", ": bool", ": str[]", ": int[]", ": float[]")


@pytest.mark.parametrize("seed", SEEDS)
def test_at_least_999_per_mille_of_every_leaf_is_reachable(seed: int):
    for kind, (total, reached, missing) in figures(seed).items():
        assert total > (5000 if kind == "vod" else 300), kind  # the generator filled the whole tree
        assert reached / total >= THRESHOLD, (kind, reached, total, sorted(set(missing))[:20])


def test_the_generator_fills_every_documented_field():
    """Every scalar field the reference lists name is a leaf of some generated body."""
    generated = {
        re.sub(r"\[\d+\]", "", path).split(".")[-1]
        for body in [*vod_bodies(1), *live_bodies(1)]
        for path, _ in leaves(body)
    }
    listed = {
        line.strip().split(":")[0]
        for name in ("fields-vod.txt", "fields-live.txt")
        for line in (REFERENCE / name).read_text().splitlines()
        if line.strip().endswith(SCALARS)
    }
    assert {"RecordOver", "SampleRate", "TimestampSet", "HeadTimeOffset", "StartTimeMs"} <= listed
    assert listed - generated <= {"Sign"}  # Sign is redacted: no leaf


def _segments(body: dict, kind: str) -> list:
    return [s for sub in parse(copy.deepcopy(body)).subtasks for s in sub.segments if s.kind == kind]


def live(notification_type: str, info: dict) -> dict:
    return {"NotificationType": notification_type, "TaskId": "live-fidelity", f"{notification_type}Info": info}


def test_wall_clock_times_are_kept_as_utc_iso_8601():
    record = live(
        "LiveRecordResult",
        {
            "RecordOver": 1,
            "FileResults": [
                {
                    "Url": "https://x.test/a.mp4",
                    "StartTime": "2025-03-01T08:00:00+08:00",
                    "EndTime": "2025-03-01T08:10:00+08:00",
                }
            ],
        },
    )
    [segment] = _segments(record, "record_file")
    assert (segment.extra["start_at"], segment.extra["end_at"]) == ("2025-03-01T00:00:00Z", "2025-03-01T00:10:00Z")
    assert segment.extra["StartTime"] == "2025-03-01T08:00:00+08:00"  # as MPS sent it, too
    [rest] = _segments(record, "result")
    assert rest.extra == {"RecordOver": 1}


def test_a_second_label_and_an_end_beside_a_used_begin_stay_in_extra():
    faces = live(
        "AiRecognitionResult",
        {
            "ResultSet": [
                {
                    "Type": "FaceRecognition",
                    "FaceRecognitionResultSet": [
                        {"Id": "face-7", "Name": "Ann", "Type": "celebrity", "StartPtsTime": 1.0, "EndPtsTime": 2.0}
                    ],
                }
            ]
        },
    )
    [face] = _segments(faces, "face")
    assert (face.label, face.extra["Id"], face.extra["Type"]) == ("Ann", "face-7", "celebrity")
    split = live(
        "AiAnalysisResult",
        {
            "ResultSet": [
                {
                    "Type": "SegmentRecognition",
                    "SegmentResultSet": [
                        {
                            "StartTimeOffset": 1.0,
                            "EndTimeOffset": 5.0,
                            "BeginTime": "2025-03-01T00:00:01Z",
                            "EndTime": "2025-03-01T00:00:05Z",
                        }
                    ],
                }
            ]
        },
    )
    [segment] = _segments(split, "split")
    assert (segment.start, segment.end, segment.extra["EndTime"], segment.extra["end_at"]) == (
        1.0,
        5.0,
        "2025-03-01T00:00:05Z",
        "2025-03-01T00:00:05Z",
    )


def test_points_in_time_become_segments():
    diagnosis = live(
        "AiQualityControlResult",
        {
            "DiagnoseResults": [
                {
                    "Category": "StreamStatusException",
                    "Type": "StreamOpenFailed",
                    "Timestamp": 42.5,
                    "DateTime": "2025-03-01T00:00:42Z",
                }
            ]
        },
    )
    [segment] = _segments(diagnosis, "diagnosis")
    assert (segment.start, segment.end, segment.label, segment.extra["Category"]) == (
        42.5,
        42.5,
        "StreamOpenFailed",
        "StreamStatusException",
    )
    vod = {
        "EventType": "WorkflowTask",
        "WorkflowTaskEvent": {
            "TaskId": "t-qc",
            "Status": "FINISH",
            "AiQualityControlTaskResult": {
                "Status": "SUCCESS",
                "Output": {
                    "ContainerDiagnoseResultSet": [
                        {
                            "Category": "Container",
                            "Type": "PtsJitter",
                            "TimestampSet": [9.0, 3.0, 6.0],
                            "DateTimeSet": ["2025-03-01T00:00:03Z", "2025-03-01T00:00:09Z"],
                        }
                    ]
                },
            },
        },
    }
    [segment] = _segments(vod, "diagnosis")
    assert (segment.start, segment.end, segment.extra["TimestampSet"]) == (3.0, 9.0, [9.0, 3.0, 6.0])
    assert (segment.extra["start_at"], segment.extra["end_at"]) == ("2025-03-01T00:00:03Z", "2025-03-01T00:00:09Z")


def test_head_and_tail_offsets_are_segments():
    body = {
        "EventType": "WorkflowTask",
        "WorkflowTaskEvent": {
            "TaskId": "t-ht",
            "Status": "FINISH",
            "AiAnalysisResultSet": [
                {
                    "Type": "HeadTail",
                    "HeadTailTask": {"Status": "SUCCESS", "Output": {"HeadTimeOffset": 12.5, "TailTimeOffset": 590.0}},
                }
            ],
        },
    }
    assert [(s.start, s.end) for s in _segments(body, "head")] == [(0.0, 12.5)]
    assert [(s.start, s.end) for s in _segments(body, "tail")] == [(590.0, None)]


def test_paragraphs_do_not_take_their_descriptions_text():
    body = {
        "EventType": "WorkflowTask",
        "WorkflowTaskEvent": {
            "TaskId": "t-d",
            "Status": "FINISH",
            "AiAnalysisResultSet": [
                {
                    "Type": "Description",
                    "DescriptionTask": {
                        "Status": "SUCCESS",
                        "Output": {
                            "DescriptionSet": [
                                {
                                    "Description": "the whole video",
                                    "Paragraphs": [{"Summary": "part one", "StartTimeOffset": 0, "EndTimeOffset": 9}],
                                }
                            ]
                        },
                    },
                }
            ],
        },
    }
    [paragraph] = _segments(body, "paragraph")
    assert (paragraph.text, paragraph.summary, paragraph.start) == (None, "part one", 0.0)


def test_review_items_keep_sample_rate_and_duration():
    body = {
        "EventType": "WorkflowTask",
        "WorkflowTaskEvent": {
            "TaskId": "t-r",
            "Status": "FINISH",
            "AiContentReviewResultSet": [
                {"Type": "Porn", "SampleRate": 0.5, "Duration": 61.0, "PornTask": {"Status": "SUCCESS", "Output": {}}}
            ],
        },
    }
    projection = parse(body)
    assert projection.extra["items"] == {"AiReview/PornTask/-/1": {"SampleRate": 0.5, "Duration": 61.0}}


def test_llm_issue_keeps_its_score_and_its_milliseconds():
    body = {
        "EventType": "WorkflowTask",
        "WorkflowTaskEvent": {
            "TaskId": "t-l",
            "Status": "FINISH",
            "AiQualityControlTaskResult": {
                "Status": "SUCCESS",
                "Output": {
                    "LLMDetectionReport": {
                        "ResultSet": [
                            {
                                "Category": "c",
                                "IssueSet": [
                                    {
                                        "Tag": "blur",
                                        "Score": 0.7,
                                        "Confidence": 0.9,
                                        "StartTimeMs": 1500,
                                        "EndTimeMs": 2500,
                                    }
                                ],
                            }
                        ]
                    }
                },
            },
        },
    }
    [issue] = _segments(body, "llm_issue")
    assert (issue.start, issue.end, issue.confidence, issue.extra["Score"], issue.extra["StartTimeMs"]) == (
        1.5,
        2.5,
        0.9,
        0.7,
        1500,
    )
