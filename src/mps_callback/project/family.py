"""What the projector knows about one MPS result group and its families: what extractor modules declare."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from mps_callback import metrics
from mps_callback.project.model import SegmentItem, TaskProjection

if TYPE_CHECKING:
    from mps_callback.project.parse import Reader

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Family:
    """How to read one result family.

    ``segments`` names the lists whose items become segments, and of which kind. Lists it
    does not name still become segments when their items are time-ranged (kind
    ``<family>.<list>``), so a field MPS adds later is not lost. ``roles`` marks the outputs
    that the compatibility view shows (role, priority: lower wins). ``derive`` builds segments
    from single fields of the result that are times without being a list of items (a head
    ends at ``HeadTimeOffset``).
    """

    segments: Mapping[str, str] = field(default_factory=dict)
    roles: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    derive: Callable[[dict[str, Any]], list[SegmentItem]] | None = None


#: Reads one live notification of a NotificationType into its projection.
LiveReader: TypeAlias = "Callable[[Reader, str, TaskProjection], None]"


@dataclass(frozen=True, slots=True)
class Group:
    """Everything about one MPS result group, declared once by its module in ``extractors/``.

    Every name that leads a notification to this group sits here beside the families it
    leads to, and ``extractors`` builds the tables ``parse`` and the API read from these
    declarations, so no list elsewhere repeats them and a new group is one new module:

    - ``result_sets``: WorkflowTask event keys holding this group's results
      (``AiAnalysisResultSet``);
    - ``activities``: ScheduleTask ``ActivityResItem`` keys (``AnalysisTask``); each is a
      subtask of its own (the activity), read as a family of that name;
    - ``event_types``: EventTypes whose whole task is one result of this group
      (``EditMediaTask``);
    - ``live``: NotificationType -> the reader of its ``<type>Info``;
    - ``subtitle_preference``: the families whose subtitle lines the subtitles route prefers,
      best first, when a task has several sources with as many lines.
    """

    name: str
    families: Mapping[str, Family]
    result_sets: tuple[str, ...] = ()
    activities: tuple[str, ...] = ()
    event_types: tuple[str, ...] = ()
    live: Mapping[str, LiveReader] = field(default_factory=dict)
    subtitle_preference: tuple[str, ...] = ()


#: A family the code does not know: every time-ranged list becomes segments, every file an output.
UNKNOWN = Family()

SUBTITLE_ROLES = {"SubtitlePath": ("subtitle", 2)}
TRANSLATION_ROLES = {"SubtitlePath": ("translation", 2)}
ERASE_ROLES = {
    "Path": ("main", 1),
    "OriginSubtitlePath": ("subtitle", 1),
    "TranslateSubtitlePath": ("translation", 1),
}

# ------------------------------------------------------------------ noticing unknown families

#: Longest group or family name kept in a metric label or a log line.
NAME_CHARS = 64
#: Distinct unknown (group, family) names one process labels and logs; later ones are "other".
MAX_UNKNOWN_NAMES = 100
OTHER = ("other", "other")

_noticed: set[tuple[str, str]] = set()


def notice_unknown(group: str, family: str) -> None:
    """Count a family (or live NotificationType) the tables do not know, and log its name once.

    It is still projected generically (``UNKNOWN``); the count and the warning are how an
    operator learns that MPS ships something new, and that a module should learn it. It is
    counted each time a notification is projected (a reproject counts it again).

    Both names come from the notification body, which anyone who reaches the callback can
    write, so they are clipped to ``NAME_CHARS`` and, once a process has seen
    ``MAX_UNKNOWN_NAMES`` distinct ones, counted as ``other``/``other`` and no longer logged:
    a hostile sender can mint neither unbounded metric series (``MAX_UNKNOWN_NAMES`` + 1 per
    process; in multiprocess mode each process keeps its own) nor log lines nor memory. No
    body content is logged, only the two names (``%r``: control characters escaped).
    """
    label = (group[:NAME_CHARS], family[:NAME_CHARS])
    if label not in _noticed:
        label = _first_sight(label)
    metrics.UNKNOWN_FAMILIES.labels(*label).inc()


def _first_sight(label: tuple[str, str]) -> tuple[str, str]:
    """Remember and log a new name; once the process holds ``MAX_UNKNOWN_NAMES`` of them, ``OTHER``."""
    if len(_noticed) >= MAX_UNKNOWN_NAMES:
        return OTHER
    _noticed.add(label)
    log.warning("MPS sent a result this version does not know (group %r, family %r): projected generically", *label)
    if len(_noticed) == MAX_UNKNOWN_NAMES:
        log.warning("%d unknown result families seen: later ones are counted as other/other", MAX_UNKNOWN_NAMES)
    return label
