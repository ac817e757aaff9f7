"""Quality control: scores, quality findings with their time ranges, container diagnosis, LLM detection."""

from mps_callback.project.family import Family, Group

QUALITY = Family(
    segments={
        "QualityControlItems": "quality",
        "ContainerDiagnoseResultSet": "diagnosis",
        "IssueSet": "llm_issue",
    }
)

FAMILIES = {"AiQualityControlTaskResult": QUALITY, "QualityControlTask": QUALITY}

GROUP = Group(
    name="QualityControl",
    families=FAMILIES,
    result_sets=("AiQualityControlTaskResult",),
    activities=("QualityControlTask",),
)
