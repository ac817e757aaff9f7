"""Notification bodies the tests send: the fixture files, and a journal row as the spool holds it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from tests.fixtures.make_fixtures import SECRET_ID, SECRET_KEY

FIXTURES = Path(__file__).parent.parent / "fixtures"

__all__ = ["FIXTURES", "SECRET_ID", "SECRET_KEY", "fixture_files", "journal_row", "load_fixture"]


def fixture_files(kind: str) -> list[Path]:
    return sorted((FIXTURES / kind).glob("*.json"))


def load_fixture(relative: str | Path) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads((FIXTURES / relative).read_bytes())
    return document


def journal_row(task_id: str) -> dict[str, Any]:
    """One journal row of an unsigned live ProcessEof, as the spool stores it."""
    return {
        "received_at": datetime(2026, 11, 1, tzinfo=UTC).isoformat(),
        "kind": "live",
        "event_type": None,
        "notification_type": "ProcessEof",
        "task_id": task_id,
        "session_id": None,
        "session_context": None,
        "body": {"NotificationType": "ProcessEof", "TaskId": task_id},
        "signature": "unsigned",
        "channel": "http",
        "wrapper": "none",
        "message_id": None,
        "delivery": {},
        "dedupe_key": f"{task_id:0>64}"[-64:],
    }
