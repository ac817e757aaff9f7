"""AI recognition on files: faces, ASR words and full text, OCR words and full text, translation, objects."""

from mps_callback.project.family import SUBTITLE_ROLES, TRANSLATION_ROLES, Family, Group

FAMILIES = {
    "FaceTask": Family(segments={"SegmentSet": "face"}),
    "AsrWordsTask": Family(segments={"SegmentSet": "asr_word"}),
    "AsrFullTextTask": Family(segments={"SegmentSet": "subtitle", "Wordlist": "word"}, roles=SUBTITLE_ROLES),
    "OcrWordsTask": Family(segments={"SegmentSet": "ocr_word"}),
    "OcrFullTextTask": Family(segments={"SegmentSet": "ocr", "TextSet": "ocr_text"}),
    "TransTextTask": Family(segments={"SegmentSet": "subtitle", "Wordlist": "word"}, roles=TRANSLATION_ROLES),
    "ObjectTask": Family(segments={"SegmentSet": "object"}),
}

GROUP = Group(
    name="AiRecognition",
    families=FAMILIES,
    result_sets=("AiRecognitionResultSet",),
    activities=("RecognitionTask",),
    subtitle_preference=("AsrFullTextTask", "TransTextTask"),
)
