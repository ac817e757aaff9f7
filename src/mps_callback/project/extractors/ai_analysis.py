"""AI analysis: classification, cover, tags, frame tags, highlights, de-logo / smart erase,
splitting, head-tail, LLM description (summary), horizontal-to-vertical, dubbing, video
remake, comprehension, cutout, reel, generic."""

from mps_callback.project.family import ERASE_ROLES, Family

GROUP = "AiAnalysis"

FAMILIES = {
    "ClassificationTask": Family(segments={"ClassificationSet": "classification"}),
    "CoverTask": Family(segments={"CoverSet": "cover"}),
    "TagTask": Family(segments={"TagSet": "tag"}),
    "FrameTagTask": Family(segments={"SegmentSet": "frame_tag", "TagSet": "tag"}),
    "HighlightTask": Family(segments={"HighlightSet": "highlight", "SegmentSet": "highlight_segment"}),
    "DeLogoTask": Family(roles=ERASE_ROLES),
    "SegmentTask": Family(segments={"SegmentSet": "split"}),
    "HeadTailTask": Family(),
    "DescriptionTask": Family(segments={"DescriptionSet": "summary", "Paragraphs": "paragraph"}),
    "HorizontalToVerticalTask": Family(roles={"Path": ("main", 3)}),
    "DubbingTask": Family(roles={"VideoPath": ("main", 3)}),
    "VideoRemakeTask": Family(roles={"Path": ("main", 3)}),
    "VideoComprehensionTask": Family(segments={"VideoComprehensionResultList": "comprehension"}),
    "CutoutTask": Family(roles={"Path": ("main", 3)}),
    "ReelTask": Family(roles={"VideoPath": ("main", 3)}),
    "GenericTask": Family(),
}
