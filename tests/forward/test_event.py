"""The event value: its envelope and body are what every sink sends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from mps_callback.forward.event import EVENT_TYPES, Event


def test_envelope_and_body() -> None:
    event = Event(
        id="evt_1",
        type="task.finished",
        timestamp=datetime(2026, 11, 24, 19, 22, 19, 5, tzinfo=timezone(timedelta(hours=8))),
        task_id="2600011633-WorkflowTask-abc",
        sequence=7,
        kind="vod",
        event_type="WorkflowTask",
        data={"status": "FINISH", "outputs": [{"url": "https://cdn.example.com/a.vtt"}]},
    )
    envelope = {
        "id": "evt_1",
        "type": "task.finished",
        "timestamp": "2026-11-24T11:22:19.000005Z",
        "sequence": 7,
        "data": {"status": "FINISH", "outputs": [{"url": "https://cdn.example.com/a.vtt"}]},
    }
    assert event.envelope() == envelope
    assert orjson.loads(event.body()) == envelope
    assert datetime.fromisoformat(envelope["timestamp"]) == event.timestamp


def test_a_naive_timestamp_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Event(id="e", type="task.updated", timestamp=datetime(2026, 1, 1), task_id=None, sequence=1)


def test_event_types() -> None:
    assert EVENT_TYPES == ("notification.received", "task.updated", "task.finished", "task.failed")
    event = Event(id="e", type="task.failed", timestamp=datetime.now(UTC), task_id=None, sequence=0)
    with pytest.raises(AttributeError):
        event.id = "other"  # type: ignore[misc]
