"""Live streams: review, recognition, analysis, quality, recording, smart subtitles, ProcessEof.

Keyed by the result set's name inside each ``...ResultInfo``; every live notification adds
results to its task (append mode) rather than replacing an earlier state.
"""

from mps_callback.project.family import Family

GROUP = "Live"

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
