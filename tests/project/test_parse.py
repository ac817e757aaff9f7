"""parse(): what each MPS result family yields, field by field.

Every fixture's full projection is also pinned in ``expected/`` (regenerate with
``MPS_UPDATE_GOLDEN=1 pytest tests/project/test_parse.py`` and review the diff).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest

from mps_callback.project.parse import parse
from mps_callback.verify.redact import redact
from tests.support.bodies import fixture_files, load_fixture

EXPECTED = Path(__file__).parent / "expected"
BUCKET_URL = "https://mps-out-1250000000.cos.ap-guangzhou.myqcloud.com"
ALL = fixture_files("vod") + fixture_files("live") + fixture_files("examples") + fixture_files("captured")


def projection_of(relative: str):
    body = load_fixture(relative)
    redact(body)
    return parse(body)


@pytest.mark.parametrize("path", ALL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_field_matches_the_reviewed_projection(path: Path):
    body = orjson.loads(path.read_bytes())
    redact(body)
    actual = orjson.loads(orjson.dumps(asdict(parse(body)), option=orjson.OPT_INDENT_2))
    expected_file = EXPECTED / path.parent.name / path.name
    if os.environ.get("MPS_UPDATE_GOLDEN"):
        expected_file.parent.mkdir(parents=True, exist_ok=True)
        expected_file.write_bytes(orjson.dumps(actual, option=orjson.OPT_INDENT_2) + b"\n")
    assert actual == orjson.loads(expected_file.read_bytes())


# (fixture, group, family, MPS Type, number of outputs, segment kinds)
WORKFLOW_FAMILIES = [
    ("MediaProcess-TranscodeTask", "MediaProcess", "TranscodeTask", "Transcode", 1, {}),
    ("MediaProcess-AnimatedGraphicTask", "MediaProcess", "AnimatedGraphicTask", "AnimatedGraphic", 1, {}),
    (
        "MediaProcess-SnapshotByTimeOffsetTask",
        "MediaProcess",
        "SnapshotByTimeOffsetTask",
        "SnapshotByTimeOffset",
        1,
        {"snapshot": 1},
    ),
    ("MediaProcess-SampleSnapshotTask", "MediaProcess", "SampleSnapshotTask", "SampleSnapshot", 2, {}),
    ("MediaProcess-ImageSpriteTask", "MediaProcess", "ImageSpriteTask", "ImageSprite", 3, {}),
    (
        "MediaProcess-AdaptiveDynamicStreamingTask",
        "MediaProcess",
        "AdaptiveDynamicStreamingTask",
        "AdaptiveDynamicStreaming",
        1,
        {},
    ),
    ("AiAnalysis-ClassificationTask", "AiAnalysis", "ClassificationTask", "Classification", 0, {"classification": 1}),
    ("AiAnalysis-CoverTask", "AiAnalysis", "CoverTask", "Cover", 1, {"cover": 1}),
    ("AiAnalysis-TagTask", "AiAnalysis", "TagTask", "Tag", 0, {"tag": 1}),
    ("AiAnalysis-FrameTagTask", "AiAnalysis", "FrameTagTask", "FrameTag", 0, {"frame_tag": 2, "tag": 2}),
    (
        "AiAnalysis-HighlightTask",
        "AiAnalysis",
        "HighlightTask",
        "Highlight",
        4,
        {"highlight": 1, "highlight_segment": 2},
    ),
    ("AiAnalysis-DeLogoTask", "AiAnalysis", "DeLogoTask", "DeLogo", 10, {}),
    ("AiAnalysis-SegmentTask", "AiAnalysis", "SegmentTask", "Segment", 8, {"split": 2}),
    ("AiAnalysis-HeadTailTask", "AiAnalysis", "HeadTailTask", "HeadTail", 0, {"head": 1, "tail": 1}),
    ("AiAnalysis-DescriptionTask", "AiAnalysis", "DescriptionTask", "Description", 3, {"summary": 1, "paragraph": 2}),
    ("AiAnalysis-HorizontalToVerticalTask", "AiAnalysis", "HorizontalToVerticalTask", "HorizontalToVertical", 1, {}),
    ("AiAnalysis-DubbingTask", "AiAnalysis", "DubbingTask", "Dubbing", 4, {}),
    ("AiAnalysis-VideoRemakeTask", "AiAnalysis", "VideoRemakeTask", "VideoRemake", 1, {}),
    (
        "AiAnalysis-VideoComprehensionTask",
        "AiAnalysis",
        "VideoComprehensionTask",
        "VideoComprehension",
        0,
        {"comprehension": 1},
    ),
    ("AiAnalysis-CutoutTask", "AiAnalysis", "CutoutTask", "Cutout", 1, {}),
    ("AiAnalysis-ReelTask", "AiAnalysis", "ReelTask", "Reel", 4, {}),
    ("AiAnalysis-GenericTask", "AiAnalysis", "GenericTask", "Generic", 0, {}),
    ("AiRecognition-FaceTask", "AiRecognition", "FaceTask", "Face", 1, {"face": 2}),
    ("AiRecognition-AsrWordsTask", "AiRecognition", "AsrWordsTask", "AsrWords", 0, {"asr_word": 2}),
    ("AiRecognition-AsrFullTextTask", "AiRecognition", "AsrFullTextTask", "AsrFullText", 1, {"subtitle": 2, "word": 4}),
    ("AiRecognition-OcrWordsTask", "AiRecognition", "OcrWordsTask", "OcrWords", 0, {"ocr_word": 2}),
    ("AiRecognition-OcrFullTextTask", "AiRecognition", "OcrFullTextTask", "OcrFullText", 0, {"ocr": 2, "ocr_text": 2}),
    ("AiRecognition-TransTextTask", "AiRecognition", "TransTextTask", "TransText", 1, {"subtitle": 2, "word": 4}),
    ("AiRecognition-ObjectTask", "AiRecognition", "ObjectTask", "Object", 0, {"object": 2}),
    (
        "SmartSubtitles-AsrFullTextTask",
        "SmartSubtitles",
        "AsrFullTextTask",
        "AsrFullText",
        5,
        {"subtitle": 2, "word": 4},
    ),
    ("SmartSubtitles-TransTextTask", "SmartSubtitles", "TransTextTask", "TransText", 5, {"subtitle": 2, "word": 4}),
    (
        "SmartSubtitles-PureSubtitleTransTask",
        "SmartSubtitles",
        "PureSubtitleTransTask",
        "PureSubtitleTrans",
        3,
        {"subtitle_file": 1},
    ),
    ("SmartSubtitles-OcrFullTextTask", "SmartSubtitles", "OcrFullTextTask", "OcrFullText", 6, {"subtitle": 2}),
    (
        "AiQualityControlTaskResult",
        "QualityControl",
        "AiQualityControlTaskResult",
        None,
        0,
        {"quality": 2, "diagnosis": 1, "llm_issue": 1},
    ),
    ("SmartEraseTaskResult", "Task", "SmartEraseTaskResult", None, 10, {}),
    ("AiDubbingTaskResult", "Task", "AiDubbingTaskResult", None, 14, {}),
] + [
    (f"AiContentReview-{key}", "AiReview", key, key.removesuffix("Task"), outputs, {"review": 2})
    for key, outputs in [
        ("PornTask", 2),
        ("TerrorismTask", 2),
        ("PoliticalTask", 2),
        ("PornAsrTask", 0),
        ("PornOcrTask", 2),
        ("PoliticalAsrTask", 0),
        ("PoliticalOcrTask", 2),
        ("TerrorismOcrTask", 2),
        ("ProhibitedAsrTask", 0),
        ("ProhibitedOcrTask", 2),
    ]
]


@pytest.mark.parametrize(
    ("fixture", "group", "family", "type_", "n_outputs", "segment_kinds"),
    WORKFLOW_FAMILIES,
    ids=[row[0] for row in WORKFLOW_FAMILIES],
)
def test_workflow_task_families(fixture, group, family, type_, n_outputs, segment_kinds):
    projection = projection_of(f"vod/WorkflowTask-{fixture}.json")
    assert (projection.kind, projection.event_type, projection.status, projection.failed) == (
        "vod",
        "WorkflowTask",
        "FINISH",
        False,
    )
    assert projection.video_name == "source.mp4" and projection.session_context == "user-42"
    assert projection.input_location == "cos://mps-out-1250000000/input/source.mp4"
    assert projection.metadata["Width"] == 1280
    [subtask] = projection.subtasks
    assert (subtask.group, subtask.family, subtask.type) == (group, family, type_)
    raw = load_fixture(f"vod/WorkflowTask-{fixture}.json")
    redact(raw)
    node = _result_node(raw, family)
    assert subtask.status == "SUCCESS"
    assert (subtask.err_code, subtask.message, subtask.progress) == (
        node.get("ErrCode"),
        "SUCCESS",
        node.get("Progress"),
    )
    assert subtask.input == node["Input"] and subtask.output == node["Output"]
    assert subtask.definition == 100030 and subtask.mode == "snapshot"
    assert subtask.key == f"{group}/{family}/100030/1"
    assert len(subtask.outputs) == n_outputs
    assert dict(Counter(segment.kind for segment in subtask.segments)) == segment_kinds
    for output in subtask.outputs:
        assert output.url is not None or output.storage == "vod", output
        if output.storage == "cos":
            assert output.url == BUCKET_URL + "/" + quote(output.path.lstrip("/"))  # keys are percent-encoded
    assert "[redacted]" in orjson.dumps(projection.input).decode()


def _result_node(body: dict, family: str) -> dict:
    event = body["WorkflowTaskEvent"]
    if family in event:
        return event[family]
    return next(
        item[family] for value in event.values() if isinstance(value, list) for item in value if item.get(family)
    )


def test_de_logo_outputs_name_their_roles_and_urls():
    [subtask] = projection_of("vod/WorkflowTask-AiAnalysis-DeLogoTask.json").subtasks
    by_field = {output.field: output for output in subtask.outputs}
    main = by_field["Output.Path"]
    assert (main.kind, main.storage, main.role, main.priority) == ("video", "cos", "main", 1)
    assert main.url == f"{BUCKET_URL}/mps/aianalysisresultset/delogotask/path-0.mp4"
    assert (main.bucket, main.region) == ("mps-out-1250000000", "ap-guangzhou")
    assert (by_field["Output.OriginSubtitlePath"].kind, by_field["Output.OriginSubtitlePath"].role) == (
        "subtitle",
        "subtitle",
    )
    assert by_field["Output.TranslateSubtitlePath"].role == "translation"
    assert by_field["Output.FileId"].storage == "vod" and by_field["Output.FileId"].file_id == "528589078420"
    assert by_field["Output.DubbingEditInfoUrl"].storage == "url"


def test_subtitle_segments_keep_text_translation_and_words():
    [subtask] = projection_of("vod/WorkflowTask-SmartSubtitles-TransTextTask.json").subtasks
    lines = [s for s in subtask.segments if s.kind == "subtitle"]
    assert [(s.start, s.end, s.text, s.translation) for s in lines] == [
        (1.0, 4.5, "subtitle line 0 of SegmentSet", "translated line 0"),
        (11.0, 14.5, "subtitle line 1 of SegmentSet", "translated line 1"),
    ]
    words = [s for s in subtask.segments if s.kind == "word"]
    assert [(w.text, w.start, w.end, w.translation) for w in words[:2]] == [
        ("word0", 1.0, 4.5, "translated line 0"),
        ("word1", 11.0, 14.5, "translated line 1"),
    ]
    assert lines[0].confidence == 95.5
    subtitle_file = next(o for o in subtask.outputs if o.field == "Output.SubtitlePath")
    assert (subtitle_file.kind, subtitle_file.role) == ("subtitle", "translation")


def test_highlights_split_segments_and_llm_summary():
    [highlight] = projection_of("vod/WorkflowTask-AiAnalysis-HighlightTask.json").subtasks
    clips = [s for s in highlight.segments if s.kind == "highlight_segment"]
    assert [(c.start, c.end, c.title, c.summary, c.keywords) for c in clips] == [
        (1.0, 4.5, "Title 0", "Summary 0", ["SegmentTags 0", "SegmentTags 1"]),
        (11.0, 14.5, "Title 1", "Summary 1", ["SegmentTags 0", "SegmentTags 1"]),
    ]
    assert {o.field for o in highlight.outputs} >= {
        "Output.HighlightSet[0].HighlightPath",
        "Output.HighlightSet[0].HighlightUrl",
    }

    [split] = projection_of("vod/WorkflowTask-AiAnalysis-SegmentTask.json").subtasks
    first = split.segments[0]
    assert (first.kind, first.start, first.end, first.title, first.summary) == (
        "split",
        1.0,
        4.5,
        "Title 0",
        "Summary 0",
    )
    assert first.url == f"{BUCKET_URL}/mps/aianalysisresultset/segmenttask/segmenturl-0.mp4"
    assert first.extra["PersonId"] == "PersonId 0"

    [description] = projection_of("vod/WorkflowTask-AiAnalysis-DescriptionTask.json").subtasks
    summary = next(s for s in description.segments if s.kind == "summary")
    assert (summary.text, summary.title, summary.confidence) == ("Description 0", "Title 0", 95.5)
    paragraphs = [s for s in description.segments if s.kind == "paragraph"]
    assert [(p.start, p.end, p.summary) for p in paragraphs] == [(1.0, 4.5, "Summary 0"), (11.0, 14.5, "Summary 1")]


def test_review_and_quality_findings():
    [porn] = projection_of("vod/WorkflowTask-AiContentReview-PornTask.json").subtasks
    finding = porn.segments[0]
    assert (finding.kind, finding.start, finding.end, finding.label, finding.confidence) == (
        "review",
        1.0,
        4.5,
        "Label 0",
        95.5,
    )
    assert finding.extra["Suggestion"] == "review"
    [qc] = projection_of("vod/WorkflowTask-AiQualityControlTaskResult.json").subtasks
    quality = [s for s in qc.segments if s.kind == "quality"]
    assert quality[0].label == "Type 0" and (quality[0].start, quality[0].end, quality[0].confidence) == (1.0, 4.5, 95)
    issue = next(s for s in qc.segments if s.kind == "llm_issue")
    assert (issue.start, issue.end, issue.label, issue.text) == (1.0, 4.5, "Tag 0", "Description 0")
    assert qc.output["QualityEvaluationScore"] == 1


def test_failed_subtask_marks_the_task_failed():
    projection = projection_of("examples/doc-vod-WorkflowTask-transcode.json")
    animated = next(s for s in projection.subtasks if s.family == "AnimatedGraphicTask")
    assert (animated.status, animated.err_code) == ("FAIL", 30010)
    assert projection.failed
    sprite = next(s for s in projection.subtasks if s.family == "ImageSpriteTask")
    assert {o.kind for o in sprite.outputs} == {"image", "subtitle"}


def test_schedule_task_activity_and_nested_results():
    projection = projection_of("vod/ScheduleTask-AnalysisTask.json")
    assert projection.event_type == "ScheduleTask"
    wrapper = projection.subtasks[0]
    assert (wrapper.family, wrapper.type, wrapper.key) == (
        "AnalysisTask",
        "AiAnalysis",
        "Activity[0]/AiAnalysis/AnalysisTask/100030/1",
    )
    assert wrapper.output is None and wrapper.outputs == []
    nested = {s.family for s in projection.subtasks[1:]}
    assert len(nested) == 16 and {"DeLogoTask", "DescriptionTask", "HighlightTask", "SegmentTask"} <= nested
    assert all(s.key.startswith("Activity[0]/AiAnalysis/") for s in projection.subtasks)


def test_edit_media_batch_and_blind_watermark():
    edit = projection_of("vod/EditMediaTask.json")
    [subtask] = edit.subtasks
    assert (subtask.family, subtask.status, subtask.outputs[0].role) == ("EditMediaTask", "SUCCESS", "main")

    batch = projection_of("vod/BatchTask.json")
    assert batch.task_id == "BatchTask-session-session-fixture" and batch.status == "FINISH"
    assert [s.family for s in batch.subtasks] == ["TransTextTask", "AsrFullTextTask"]
    assert all(s.status == "SUCCESS" for s in batch.subtasks)

    watermark = projection_of("vod/ExtractBlindWatermark.json")
    [subtask] = watermark.subtasks
    assert subtask.output == {"Type": "Type 0", "IsDetected": True, "Result": "Result 0"}
    assert subtask.input["SegmentDuration"] == 1


LIVE = [
    ("AiReviewResult-ImagePornResultSet", "ImagePorn", "review", 2),
    ("AiReviewResult-VoicePornResultSet", "VoicePorn", "review", 0),
    ("AiRecognitionResult-AsrFullTextRecognitionResultSet", "AsrFullTextRecognition", "subtitle", 0),
    ("AiRecognitionResult-TransTextRecognitionResultSet", "TransTextRecognition", "subtitle", 0),
    ("AiRecognitionResult-FaceRecognitionResultSet", "FaceRecognition", "face", 0),
    ("AiRecognitionResult-OcrWordsRecognitionResultSet", "OcrWordsRecognition", "ocr_word", 0),
    ("AiRecognitionResult-ObjectRecognitionResultSet", "ObjectRecognition", "object", 2),
    ("AiRecognitionResult-TagRecognitionResultSet", "TagRecognition", "tag", 0),
    ("AiAnalysisResult-SegmentResultSet", "Segment", "split", 8),
    ("AiAnalysisResult-HighlightResultSet", "Highlight", "highlight_segment", 4),
    ("AiAnalysisResult-DescriptionResult", "Description", "paragraph", 0),
]


@pytest.mark.parametrize(("fixture", "family", "segment_kind", "n_outputs"), LIVE, ids=[row[0] for row in LIVE])
def test_live_results_append_to_their_task(fixture, family, segment_kind, n_outputs):
    projection = projection_of(f"live/{fixture}.json")
    assert (projection.kind, projection.status, projection.failed) == ("live", "PROCESSING", False)
    [subtask] = projection.subtasks
    assert (subtask.family, subtask.type, subtask.mode, subtask.output) == (family, family, "append", None)
    kinds = Counter(s.kind for s in subtask.segments)
    assert kinds[segment_kind] == 2
    assert len(subtask.outputs) == n_outputs


def test_live_smart_subtitles_recording_quality_and_eof():
    [subtitles] = projection_of("live/AiSmartSubtitleResult.json").subtasks
    assert [(s.start, s.end, s.text, s.translation) for s in subtitles.segments] == [
        (1.0, 4.5, "subtitle line 0 of SmartSubtitleResult", "translated line 0"),
        (11.0, 14.5, "subtitle line 1 of SmartSubtitleResult", "translated line 1"),
    ]
    [record] = projection_of("live/LiveRecordResult.json").subtasks
    assert [(o.kind, o.storage) for o in record.outputs] == [("video", "url")]
    quality = projection_of("examples/doc-live-AiQualityControlResult.json").subtasks[0]
    kinds = Counter(s.kind for s in quality.segments)
    assert kinds == {"quality": 1, "diagnosis": 1, "result": 1}  # result: the QualityControlResultSet's Type
    diagnosis = next(s for s in quality.segments if s.kind == "diagnosis")
    assert (diagnosis.label, diagnosis.text) == ("StreamOpenFailed", "Open url failed.")
    eof = projection_of("examples/doc-live-ProcessEof.json")
    assert (eof.status, eof.err_code, eof.message, eof.failed) == ("FINISH", 4002, "data timeout", True)


def test_unknown_family_still_becomes_a_subtask_with_its_raw_json():
    body = load_fixture("vod/WorkflowTask-AiAnalysis-SegmentTask.json")
    item = body["WorkflowTaskEvent"]["AiAnalysisResultSet"][0]
    item["Type"] = "BrandNew"
    item["BrandNewTask"] = item.pop("SegmentTask")
    body["WorkflowTaskEvent"]["SomeNewField"] = {"Answer": 42}
    body["AnotherTopLevelKey"] = "kept"
    projection = parse(body)
    [subtask] = projection.subtasks
    assert (subtask.family, subtask.type, subtask.status) == ("BrandNewTask", "BrandNew", "SUCCESS")
    assert subtask.output["SegmentSet"][0]["Title"] == "Title 0"
    assert Counter(s.kind for s in subtask.segments) == {"BrandNewTask.SegmentSet": 2}
    assert len(subtask.outputs) == 8
    assert projection.extra == {"event": {"SomeNewField": {"Answer": 42}}, "body": {"AnotherTopLevelKey": "kept"}}


def test_real_capture_with_undocumented_keys_projects_cleanly():
    projection = projection_of("captured/terraform-WorkflowTask.json")
    assert (projection.status, projection.subtasks, projection.video_name) == ("FINISH", [], "test.mov")
    assert projection.extra == {}


@pytest.mark.parametrize(
    "body",
    [
        {"EventType": "WorkflowTask", "WorkflowTaskEvent": "not an object"},
        {
            "EventType": "WorkflowTask",
            "WorkflowTaskEvent": {
                "TaskId": "t",
                "MediaProcessResultSet": "nope",
                "AiAnalysisResultSet": [None, 1, {"DeLogoTask": None}],
            },
        },
        {
            "EventType": "ScheduleTask",
            "ScheduleTaskEvent": {"TaskId": "t", "ActivityResultSet": [None, {"ActivityResItem": 5}]},
        },
        {"NotificationType": "AiRecognitionResult", "TaskId": "t", "AiRecognitionResultInfo": {"ResultSet": [1, None]}},
        {"NotificationType": "ProcessEof", "TaskId": "t", "ProcessEofInfo": {"ErrCode": "x"}},
        {
            "EventType": "BatchTask",
            "BatchTaskEvent": {"SmartSubtitlesTaskResult": {"Outputs": [None, {"AsrFullTextTask": 1}]}},
        },
    ],
    ids=range(6),
)
def test_malformed_parts_are_skipped_not_fatal(body):
    projection = parse(body)
    assert projection.task_id
