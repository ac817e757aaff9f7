"""How much of a notification its projection keeps: bodies generated from the Tencent SDK's models.

Every model class of ``tencentcloud.mps.v20190612.models`` documents its fields' types
(``:rtype:``); ``body_for`` fills the ParseNotification / ParseLiveStreamProcessNotification
trees recursively with seeded random values, one body per EventType and per live
NotificationType, every list and object present. ``measure`` counts the body's leaves
(scalars, list elements included; secrets that ``redact`` replaces do not count) and how
many of them appear in some column or JSON column of the projection ``parse`` builds.

Run ``python -m tests.project.fidelity [SEED ...]`` to print the figures; ``test_fidelity``
asserts the threshold on fixed seeds.
"""

from __future__ import annotations

import random
import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from tencentcloud.mps.v20190612 import models

from mps_callback.mps import EVENT_CONTAINERS, LIVE_NOTIFICATION_TYPES
from mps_callback.project.parse import parse
from mps_callback.verify.redact import MARKER, redact

_RTYPE = re.compile(r":rtype:\s*(.+?)\s*$", re.MULTILINE)
_CLASS = re.compile(r"models\.(\w+)`")
#: Fields of the API answer that no notification carries.
NOT_NOTIFIED = frozenset({"RequestId"})
MAX_DEPTH = 24


def field_types(cls: type) -> dict[str, str]:
    """Field name -> the SDK's documented type (``str``, ``list of int``, ``:class:`...X```)."""
    types = {}
    for attribute in vars(cls()):
        name = attribute.lstrip("_")
        doc = getattr(getattr(cls, name, None), "__doc__", None) or ""
        match = _RTYPE.search(doc)
        if match and name not in NOT_NOTIFIED:
            types[name] = match.group(1)
    return types


class Generator:
    """Seeded random values, distinct enough that each leaf can be recognised in the projection."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def scalar(self, name: str, type_name: str) -> Any:
        rng = self.rng
        if type_name == "int":
            return rng.randint(2, 2**31 - 2)
        if type_name == "float":
            return round(rng.uniform(0.5, 100_000), 3)
        if type_name == "bool":
            return rng.random() < 0.5
        if name.endswith(("Time", "TimeSet")) or name == "DateTime":
            return (
                f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:"
                f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"
            )
        return f"{name[:12]}-{rng.getrandbits(40):010x}"

    def value(self, name: str, type_name: str, depth: int) -> Any:
        if type_name.startswith("list of "):
            element = type_name.removeprefix("list of ")
            return [self.value(name, element, depth + 1) for _ in range(self.rng.randint(1, 3))]
        match = _CLASS.search(type_name)
        cls_name = match.group(1) if match else type_name
        if cls_name in ("str", "int", "float", "bool"):
            return self.scalar(name, cls_name)
        cls = getattr(models, cls_name, None)
        if cls is None or depth > MAX_DEPTH:
            return None
        return self.model(cls, depth + 1)

    def model(self, cls: type, depth: int = 0) -> dict[str, Any]:
        return {name: self.value(name, type_name, depth) for name, type_name in field_types(cls).items()}


def vod_bodies(seed: int) -> Iterator[dict[str, Any]]:
    """One ParseNotification body per EventType, only its own container filled."""
    generator = Generator(seed)
    for event_type, container in EVENT_CONTAINERS.items():
        body = generator.model(models.ParseNotificationResponse)
        for other in EVENT_CONTAINERS.values():
            if other != container:
                body.pop(other, None)
        body["EventType"] = event_type
        yield body


def live_bodies(seed: int) -> Iterator[dict[str, Any]]:
    """One ParseLiveStreamProcessNotification body per NotificationType, only its own Info filled."""
    generator = Generator(seed)
    for notification_type in LIVE_NOTIFICATION_TYPES:
        body = generator.model(models.ParseLiveStreamProcessNotificationResponse)
        for other in LIVE_NOTIFICATION_TYPES:
            if other != notification_type:
                body.pop(f"{other}Info", None)
        body["NotificationType"] = notification_type
        yield body


def _key(value: Any) -> tuple[str, Any]:
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("number", float(value))
    return ("text", value)


def leaves(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every scalar of ``node`` with its path; redacted secrets and absent values are not leaves."""
    if isinstance(node, dict):
        for name, value in node.items():
            yield from leaves(value, f"{path}.{name}" if path else name)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from leaves(value, f"{path}[{index}]")
    elif node is not None and node != MARKER:
        yield path, node


def measure(body: dict[str, Any]) -> tuple[int, int, list[str]]:
    """(leaves, reachable leaves, paths of the unreachable ones) for one body."""
    redact(body)
    projection = parse(body)
    assert projection is not None, "a fixture of an MPS task projects to a task"
    projected = Counter(_key(value) for _, value in leaves(asdict(projection)))
    total = reached = 0
    missing = []
    for path, value in leaves(body):
        total += 1
        key = _key(value)
        if projected[key] > 0:
            projected[key] -= 1
            reached += 1
        else:
            missing.append(path)
    return total, reached, missing


def figures(seed: int) -> dict[str, tuple[int, int, list[str]]]:
    """Per kind (vod, live): leaves, reachable leaves and the unreachable paths of every body of ``seed``."""
    result = {}
    for kind, bodies in (("vod", vod_bodies(seed)), ("live", live_bodies(seed))):
        total = reached = 0
        missing: list[str] = []
        for body in bodies:
            t, r, m = measure(body)
            total, reached, missing = total + t, reached + r, missing + m
        result[kind] = (total, reached, missing)
    return result


def main(argv: list[str]) -> None:
    seeds = [int(arg) for arg in argv if arg.isdigit()] or [1, 2, 3, 4, 5]
    verbose = "-v" in argv
    for seed in seeds:
        for kind, (total, reached, missing) in figures(seed).items():
            print(f"seed {seed} {kind:4}: {reached}/{total} leaves reachable = {100 * reached / total:.3f}%")
            if verbose:
                for path in sorted({re.sub(r"\[\d+\]", "[]", p) for p in missing}):
                    print("    missing", path)


if __name__ == "__main__":
    main(sys.argv[1:])
