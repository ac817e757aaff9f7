"""The family table: (group, MPS result key) -> Family, merged from one module per group.

Adding a family MPS ships later is one entry in its group's module; a family missing here
still becomes a subtask with its raw JSON, its files as outputs and its time-ranged
items as segments (``family.UNKNOWN``).
"""

from __future__ import annotations

from mps_callback.project.extractors import (
    ai_analysis,
    ai_recognition,
    ai_review,
    live,
    media_process,
    quality_control,
    smart_subtitles,
    task_results,
)
from mps_callback.project.family import UNKNOWN, Family

FAMILIES: dict[tuple[str, str], Family] = {}
for _module in (
    ai_analysis,
    ai_recognition,
    ai_review,
    live,
    media_process,
    quality_control,
    smart_subtitles,
    task_results,
):
    FAMILIES.update({(_module.GROUP, key): family for key, family in _module.FAMILIES.items()})


def family_for(group: str, key: str) -> Family:
    return FAMILIES.get((group, key), UNKNOWN)
