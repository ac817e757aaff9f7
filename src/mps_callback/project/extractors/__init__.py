"""The routing tables, built from one tuple of group modules.

Each module here declares one MPS result group completely (``GROUP``, a ``family.Group``):
its families, the WorkflowTask result sets, ScheduleTask activities, EventTypes and live
NotificationTypes that lead to it, and its subtitle preference. ``routes(GROUPS)`` builds
every table ``parse`` and the API read from those declarations, so adding a group is one new
module and one entry in ``GROUPS``, and a family MPS ships later is one entry in its module.
A family missing here still becomes a subtask with its raw JSON, its files as outputs and
its time-ranged items as segments (``family.UNKNOWN``), and is counted and logged once
(``family.notice_unknown``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from types import ModuleType
from typing import TypeVar

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
from mps_callback.project.family import Family, Group, LiveReader

K = TypeVar("K")
V = TypeVar("V")

GROUPS: tuple[ModuleType, ...] = (
    ai_analysis,
    ai_recognition,
    ai_review,
    live,
    media_process,
    quality_control,
    smart_subtitles,
    task_results,
)


@dataclass(frozen=True, slots=True)
class Routes:
    """Every table derived from the groups' declarations; nothing here is written by hand."""

    #: (group, MPS result key) -> Family.
    families: dict[tuple[str, str], Family]
    #: WorkflowTask result set key -> group.
    result_sets: dict[str, str]
    #: ScheduleTask ActivityResItem key -> group.
    activities: dict[str, str]
    #: EventType -> group, for events whose whole task is one result.
    event_types: dict[str, str]
    #: NotificationType -> live reader.
    live: dict[str, LiveReader]
    #: Families whose subtitle lines are preferred, best first (by family name: the route reads subtasks.family).
    subtitle_preference: tuple[str, ...]


def routes(modules: Iterable[ModuleType]) -> Routes:
    """The tables of ``modules`` (each with a ``GROUP``); a name two groups claim is an error at import."""
    built = Routes(families={}, result_sets={}, activities={}, event_types={}, live={}, subtitle_preference=())
    preference: dict[str, None] = {}  # an ordered set: earlier groups first
    for module in modules:
        group: Group = module.GROUP
        # An activity is a subtask of its own; unless the group reads it as a family, it is a plain one.
        families = {activity: Family() for activity in group.activities} | dict(group.families)
        _claim(built.families, {(group.name, key): family for key, family in families.items()}, group.name)
        _claim(built.result_sets, dict.fromkeys(group.result_sets, group.name), group.name)
        _claim(built.activities, dict.fromkeys(group.activities, group.name), group.name)
        _claim(built.event_types, dict.fromkeys(group.event_types, group.name), group.name)
        _claim(built.live, dict(group.live), group.name)
        preference.update(dict.fromkeys(group.subtitle_preference))
    return replace(built, subtitle_preference=tuple(preference))


def _claim(table: dict[K, V], entries: dict[K, V], group: str) -> None:
    taken = table.keys() & entries.keys()
    if taken:
        raise ValueError(f"group {group} declares {sorted(map(str, taken))}, already declared by another group")
    table.update(entries)


ROUTES = routes(GROUPS)

#: (group, MPS result key) -> Family, for readers that only need the family table.
FAMILIES = ROUTES.families
