"""How the task list asked for a live NotificationType (``api.tasks.type_parts``): what the type tests share."""

from __future__ import annotations

from types import ModuleType

import pytest

from mps_callback.api import tasks as tasks_api

#: Every backend, so a test sees both ways (EXISTS, and the walk) on each.
EVERY_BACKEND = frozenset({"mysql", "postgresql", "sqlite"})


def ask_both_ways(monkeypatch: pytest.MonkeyPatch, common_from: int, caller: ModuleType) -> list[bool]:
    """Make a type common past ``common_from`` holders on every backend, and note, for each list or count
    query ``caller`` builds (``api.tasks`` or ``ui.pages.tasks``), whether it asked the common way."""
    monkeypatch.setattr(tasks_api, "COMMON_TYPE_HOLDERS", common_from)
    monkeypatch.setattr(tasks_api, "COUNTED_BY", EVERY_BACKEND)
    asked: list[bool] = []
    type_parts = tasks_api.type_parts

    def noting(type_name: str | None, common: bool = False) -> tasks_api.Parts:
        asked.append(common)
        return type_parts(type_name, common)

    monkeypatch.setattr(caller, "type_parts", noting)
    return asked
