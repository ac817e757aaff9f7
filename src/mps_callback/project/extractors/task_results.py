"""Whole-task results: smart erase, AI dubbing, media editing, blind watermark extraction, schedule rules."""

from mps_callback.project.family import ERASE_ROLES, Family, Group

FAMILIES = {
    "SmartEraseTaskResult": Family(roles=ERASE_ROLES),
    "SmartEraseTask": Family(roles=ERASE_ROLES),
    "AiDubbingTaskResult": Family(
        roles={
            "VideoPath": ("main", 2),
            "OriginSubtitlePath": ("subtitle", 1),
            "TranslateSubtitlePath": ("translation", 1),
        }
    ),
    "EditMediaTask": Family(roles={"Path": ("main", 2)}),
    "ExtractBlindWatermark": Family(),
    "ExecRuleTask": Family(),
}
FAMILIES["AIDubbingTask"] = FAMILIES["AiDubbingTaskResult"]

GROUP = Group(
    name="Task",
    families=FAMILIES,
    result_sets=("SmartEraseTaskResult", "AiDubbingTaskResult"),
    activities=("SmartEraseTask", "AIDubbingTask", "ExecRuleTask"),
    event_types=("EditMediaTask", "ExtractBlindWatermark"),
)
