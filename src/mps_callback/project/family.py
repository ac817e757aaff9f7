"""What the projector knows about one MPS result family: the table entries extractors declare."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mps_callback.project.model import SegmentItem


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


#: A family the code does not know: every time-ranged list becomes segments, every file an output.
UNKNOWN = Family()

SUBTITLE_ROLES = {"SubtitlePath": ("subtitle", 2)}
TRANSLATION_ROLES = {"SubtitlePath": ("translation", 2)}
ERASE_ROLES = {
    "Path": ("main", 1),
    "OriginSubtitlePath": ("subtitle", 1),
    "TranslateSubtitlePath": ("translation", 1),
}
