"""Delivery rows written straight into a database: the operator's views and commands read them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from mps_callback.store.engine import create_engine, for_writing
from mps_callback.store.outbox import new_event_id
from mps_callback.store.tables import deliveries, delivery_attempts
from tests.support.db import run

START = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def add(url: str, *rows: dict[str, Any], attempts: list[dict[str, Any]] | None = None) -> list[int]:
    """Insert deliveries (defaults filled in) and attempts for the first one; their ids in order."""

    async def go() -> list[int]:
        engine = for_writing(create_engine(url))
        ids: list[int] = []
        try:
            async with engine.begin() as connection:
                for number, row in enumerate(rows):
                    values = {
                        "event_id": new_event_id(),
                        "sink": "app",
                        "event": "task.finished",
                        "task_id": f"task-{number}",
                        "kind": "vod",
                        "mps_type": "WorkflowTask",
                        "sequence": 1,
                        "notification_id": None,
                        "data": {"task_id": f"task-{number}"},
                        "status": "pending",
                        "attempts": 0,
                        "next_attempt_at": START + timedelta(days=1),
                        "created_at": START + timedelta(minutes=number),
                        **row,
                    }
                    result = await connection.execute(deliveries.insert().values(values))
                    key = result.inserted_primary_key
                    assert key is not None, "every backend reports the new row's id"
                    ids.append(int(key[0]))
                for attempt in attempts or []:
                    await connection.execute(delivery_attempts.insert().values(delivery_id=ids[0], **attempt))
        finally:
            await engine.dispose()
        return ids

    return run(go())
