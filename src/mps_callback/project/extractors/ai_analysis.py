"""AI analysis: classification, cover, tags, frame tags, highlights, de-logo / smart erase,
splitting, head-tail, LLM description (summary), horizontal-to-vertical, dubbing, video
remake, comprehension, cutout, reel, generic."""

from typing import Any

from mps_callback.project.family import ERASE_ROLES, Family, Group
from mps_callback.project.model import SegmentItem

#: Head and tail: (segment kind, the offset field, whether the offset ends or starts the segment).
HEAD_TAIL = (("head", "HeadTimeOffset", "end"), ("tail", "TailTimeOffset", "start"))


def head_tail(output: dict[str, Any]) -> list[SegmentItem]:
    """The head runs from 0 to ``HeadTimeOffset``, the tail from ``TailTimeOffset`` to the end."""
    found = []
    for kind, offset_key, edge in HEAD_TAIL:
        offset = _number(output.get(offset_key))
        if offset is None:
            continue
        start, end = (0.0, offset) if edge == "end" else (offset, None)
        found.append(SegmentItem(kind=kind, start=start, end=end))
    return found


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


FAMILIES = {
    "ClassificationTask": Family(segments={"ClassificationSet": "classification"}),
    "CoverTask": Family(segments={"CoverSet": "cover"}),
    "TagTask": Family(segments={"TagSet": "tag"}),
    "FrameTagTask": Family(segments={"SegmentSet": "frame_tag", "TagSet": "tag"}),
    "HighlightTask": Family(segments={"HighlightSet": "highlight", "SegmentSet": "highlight_segment"}),
    "DeLogoTask": Family(roles=ERASE_ROLES),
    "SegmentTask": Family(segments={"SegmentSet": "split"}),
    "HeadTailTask": Family(derive=head_tail),
    "DescriptionTask": Family(segments={"DescriptionSet": "summary", "Paragraphs": "paragraph"}),
    "HorizontalToVerticalTask": Family(roles={"Path": ("main", 3)}),
    "DubbingTask": Family(roles={"VideoPath": ("main", 3)}),
    "VideoRemakeTask": Family(roles={"Path": ("main", 3)}),
    "VideoComprehensionTask": Family(segments={"VideoComprehensionResultList": "comprehension"}),
    "CutoutTask": Family(roles={"Path": ("main", 3)}),
    "ReelTask": Family(roles={"VideoPath": ("main", 3)}),
    "GenericTask": Family(),
}

GROUP = Group(
    name="AiAnalysis",
    families=FAMILIES,
    result_sets=("AiAnalysisResultSet",),
    activities=("AnalysisTask",),
)
