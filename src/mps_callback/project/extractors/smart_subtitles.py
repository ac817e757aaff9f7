"""Smart subtitles: ASR subtitles, translated subtitles, pure subtitle translation, OCR subtitles."""

from mps_callback.project.family import SUBTITLE_ROLES, Family, Group

FAMILIES = {
    "AsrFullTextTask": Family(
        segments={"SegmentSet": "subtitle", "Wordlist": "word"}, roles={"SubtitlePath": ("subtitle", 1)}
    ),
    "TransTextTask": Family(
        segments={"SegmentSet": "subtitle", "Wordlist": "word"}, roles={"SubtitlePath": ("translation", 1)}
    ),
    "PureSubtitleTransTask": Family(segments={"SubtitleResults": "subtitle_file"}, roles={"Path": ("translation", 3)}),
    "OcrFullTextTask": Family(segments={"SegmentSet": "subtitle"}, roles=SUBTITLE_ROLES),
}

GROUP = Group(
    name="SmartSubtitles",
    families=FAMILIES,
    result_sets=("SmartSubtitlesTaskResult",),
    activities=("SmartSubtitlesTask",),
    event_types=("BatchTask",),
    subtitle_preference=("AsrFullTextTask", "TransTextTask", "OcrFullTextTask"),
)
