"""The bodies the benchmark posts: the typical 5 KB WorkflowTask and a 300 KB ScheduleTask
with word-level ASR, both templates with ``__TASKID__``, ``__TS__`` and ``__SIGN__``."""

from __future__ import annotations

import json
from pathlib import Path


def large_schedule_task(target_bytes: int = 300_000) -> str:
    """A finished ScheduleTask whose smart-subtitle result carries word-level ASR, ~300 KB."""
    segments, size, index = [], 0, 0
    while size < target_bytes:
        start = index * 2.0
        words = [
            {
                "Word": f"word{index}-{n}",
                "Start": start + n * 0.2,
                "End": start + n * 0.2 + 0.18,
                "Trans": f"trans{index}-{n}",
            }
            for n in range(10)
        ]
        segment = {
            "Confidence": 97.5,
            "StartTimeOffset": start,
            "EndTimeOffset": start + 1.9,
            "Text": f"subtitle line number {index} with some spoken words",
            "Wordlist": words,
            "SpeakerId": f"speaker-{index % 3}",
        }
        segments.append(segment)
        size += len(json.dumps(segment))
        index += 1
    task = {
        "Status": "SUCCESS",
        "ErrCodeExt": "",
        "ErrCode": 0,
        "Message": "SUCCESS",
        "Progress": 100,
        "Input": {"Definition": 100030},
        "Output": [
            {
                "Type": "AsrFullText",
                "AsrFullTextTask": {
                    "Status": "SUCCESS",
                    "ErrCode": 0,
                    "Message": "SUCCESS",
                    "Progress": 100,
                    "Input": {"Definition": 100030},
                    "Output": {
                        "SegmentSet": segments,
                        "SubtitlePath": "/subtitles/__TASKID__.vtt",
                        "OutputStorage": {
                            "Type": "COS",
                            "CosOutputStorage": {"Bucket": "bench-1250000000", "Region": "ap-guangzhou"},
                        },
                    },
                },
            }
        ],
    }
    body = {
        "EventType": "ScheduleTask",
        "ScheduleTaskEvent": {
            "TaskId": "__TASKID__",
            "Status": "FINISH",
            "ErrCode": 0,
            "Message": "",
            "InputInfo": {
                "Type": "COS",
                "CosInputInfo": {"Bucket": "bench-1250000000", "Region": "ap-guangzhou", "Object": "/video/long.mp4"},
            },
            "ActivityResultSet": [{"ActivityType": "SmartSubtitles", "ActivityResItem": {"SmartSubtitlesTask": task}}],
        },
        "SessionId": "",
        "SessionContext": "bench",
        "Timestamp": "__TS__",
        "Sign": "__SIGN__",
    }
    return json.dumps(body).replace('"__TS__"', "__TS__")


def write_templates(directory: Path, typical: Path) -> dict[str, Path]:
    large = directory / "schedule_asr_300k.json.tpl"
    large.write_text(large_schedule_task())
    return {"typical": typical, "large": large}
