"""Live streams: review, recognition, analysis, quality, recording, smart subtitles, ProcessEof.

Keyed by NotificationType; the family's ``segments`` name the result sets inside each
``<type>Info``. Every live notification adds results to its task (append mode) rather than
replacing an earlier state, except ProcessEof, which ends the task.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mps_callback.project.family import Family, Group
from mps_callback.project.values import text
from mps_callback.store.types import whole_number

if TYPE_CHECKING:
    from mps_callback.project.model import TaskProjection
    from mps_callback.project.parse import Reader

_REVIEW = Family(
    segments=dict.fromkeys(
        ("ImagePornResultSet", "ImageTerrorismResultSet", "ImagePoliticalResultSet", "VoicePornResultSet"), "review"
    )
)

FAMILIES = {
    "AiReviewResult": _REVIEW,
    "AiRecognitionResult": Family(
        segments={
            "FaceRecognitionResultSet": "face",
            "AsrWordsRecognitionResultSet": "asr_word",
            "OcrWordsRecognitionResultSet": "ocr_word",
            "AsrFullTextRecognitionResultSet": "subtitle",
            "OcrFullTextRecognitionResultSet": "ocr",
            "TransTextRecognitionResultSet": "subtitle",
            "ObjectRecognitionResultSet": "object",
            "TagRecognitionResultSet": "tag",
        }
    ),
    "AiAnalysisResult": Family(
        segments={
            "SegmentResultSet": "split",
            "HighlightResultSet": "highlight",
            "SegmentSet": "highlight_segment",
            "Paragraphs": "paragraph",
        }
    ),
    "AiQualityControlResult": Family(
        segments={
            "QualityControlItems": "quality",
            "DiagnoseResults": "diagnosis",
            "DiagnoseResultSet": "diagnosis",
        }
    ),
    "LiveRecordResult": Family(segments={"FileResults": "record_file"}),
    "AiSmartSubtitleResult": Family(segments={"SmartSubtitleResult": "subtitle"}),
    "ProcessEof": Family(),
}


def read_results(reader: Reader, notification_type: str, projection: TaskProjection) -> None:
    """Results appended to the task: one subtask per ``ResultSet`` item (by its Type), else the whole Info.

    Also the reader of a NotificationType no module knows: its results are kept the same way.
    """
    spec = reader.family(GROUP.name, notification_type)
    info = reader.body.get(f"{notification_type}Info")
    if not isinstance(info, dict):
        return
    results = info.get("ResultSet")
    items = [item for item in results if isinstance(item, dict)] if isinstance(results, list) else []
    typed = [(item, text(item.get("Type"))) for item in items] if any("Type" in item for item in items) else []
    for output, type_ in typed or [(info, None)]:
        projection.subtasks.append(
            reader.subtask(
                {},
                scope="",
                group=notification_type,
                family=type_ or notification_type,
                type=type_,
                mode="append",
                output=output,
                status={},
                spec=spec,
            )
        )


def read_end(reader: Reader, notification_type: str, projection: TaskProjection) -> None:
    """ProcessEof: the stream's task is over, and failed when ``ProcessEofInfo`` carries an ErrCode."""
    spec = reader.family(GROUP.name, notification_type)
    found = reader.body.get(f"{notification_type}Info")
    info: dict[str, Any] = found if isinstance(found, dict) else {}
    projection.status = "FINISH"
    projection.err_code = whole_number(info.get("ErrCode"))
    projection.message = text(info.get("Message"))
    state = {"Status": "FAIL" if projection.err_code else "SUCCESS", **info}
    projection.subtasks.append(
        reader.subtask(
            {},
            scope="",
            group=notification_type,
            family=notification_type,
            output=info,
            status=state,
            spec=spec,
        )
    )


GROUP = Group(
    name="Live",
    families=FAMILIES,
    live=dict.fromkeys(FAMILIES, read_results) | {"ProcessEof": read_end},
)
