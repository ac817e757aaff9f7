"""AI content review: porn, terrorism, political and prohibited content, in images, speech and text."""

from mps_callback.project.family import Family, Group

_REVIEW = Family(segments={"SegmentSet": "review"})

FAMILIES = dict.fromkeys(
    (
        "PornTask",
        "TerrorismTask",
        "PoliticalTask",
        "PornAsrTask",
        "PornOcrTask",
        "PoliticalAsrTask",
        "PoliticalOcrTask",
        "TerrorismOcrTask",
        "ProhibitedAsrTask",
        "ProhibitedOcrTask",
    ),
    _REVIEW,
)

GROUP = Group(
    name="AiReview",
    families=FAMILIES,
    result_sets=("AiContentReviewResultSet",),
    activities=("ReviewTask",),
)
