"""The operator's side of the outbox on real databases: retention, standing per sink, /readyz, gauges."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client import generate_latest

from mps_callback import metrics
from mps_callback.forward.config import parse
from mps_callback.forward.forwarder import Forwarder
from mps_callback.retention import purge
from mps_callback.store import deliveries as store_deliveries
from mps_callback.store.deliveries import measure
from mps_callback.store.engine import create_engine, for_writing
from mps_callback.store.outbox import Subscription
from mps_callback.store.tables import deliveries, delivery_attempts, notifications
from tests.support.db import query, run
from tests.support.deliveries import add
from tests.support.forward import SECRET, Receiver
from tests.support.projection import run_ingest
from tests.support.service import InProcessService

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=40)


def test_retention_forgets_old_settled_deliveries_and_keeps_what_is_owed(database_url: str):
    _, _, old_pending, new_delivered = add(
        database_url,
        {"status": "delivered", "created_at": OLD},
        {"status": "dead", "created_at": OLD},
        {"status": "pending", "created_at": OLD},
        {"status": "delivered", "created_at": NOW},
        attempts=[{"attempted_at": OLD, "duration_ms": 1, "outcome": "delivered"}],
    )

    async def go() -> dict[str, int]:
        engine = create_engine(database_url)
        try:
            return await purge(engine, 30)
        finally:
            await engine.dispose()

    assert run(go())["deliveries"] == 2
    assert sorted(row.id for row in query(database_url, sa.select(deliveries.c.id))) == [old_pending, new_delivered]
    assert query(database_url, sa.select(delivery_attempts.c.id)) == [], "the purged delivery's attempts went too"


def test_retention_keeps_the_journal_rows_pending_deliveries_will_carry(database_url: str):
    """A notification.received still owed reads its journal row when sent: the purge must not take it."""
    run_ingest(database_url, [eof("kept-1"), eof("gone-2")], project=False)
    kept, gone = (row.id for row in query(database_url, sa.select(notifications.c.id).order_by(notifications.c.id)))
    add(
        database_url,
        {"event": "notification.received", "notification_id": kept, "data": None, "created_at": OLD},
        {"event": "notification.received", "notification_id": gone, "data": None, "created_at": OLD},
        {"status": "delivered", "event": "notification.received", "notification_id": gone, "created_at": OLD},
    )
    run(_backdate(database_url))

    async def go() -> dict[str, int]:
        engine = create_engine(database_url)
        try:
            async with for_writing(engine).begin() as connection:  # the second one was delivered after all
                await connection.execute(
                    deliveries.update().where(deliveries.c.notification_id == gone).values(status="delivered")
                )
            return await purge(engine, 30)
        finally:
            await engine.dispose()

    assert run(go())["notifications"] == 1
    assert query(database_url, sa.select(notifications.c.id)) == [(kept,)]


def eof(task_id: str) -> dict[str, object]:
    return {"NotificationType": "ProcessEof", "TaskId": task_id, "ProcessEofInfo": {"ErrCode": 0}}


async def _backdate(url: str) -> None:
    engine = create_engine(url)
    try:
        async with for_writing(engine).begin() as connection:
            await connection.execute(notifications.update().values(received_at=OLD))
    finally:
        await engine.dispose()


def test_standing_counts_backlog_dead_and_oldest_per_sink_and_sets_the_gauges(database_url: str):
    add(
        database_url,
        {"sink": "app", "status": "pending", "next_attempt_at": OLD, "created_at": NOW - timedelta(seconds=90)},
        {"sink": "app", "status": "pending", "next_attempt_at": NOW + timedelta(hours=1), "created_at": NOW},
        {"sink": "app", "status": "delivered", "created_at": OLD},
        {"sink": "chat", "status": "dead", "created_at": NOW},
    )

    async def go() -> dict[str, dict[str, float]]:
        engine = create_engine(database_url)
        try:
            return await measure(engine, ["app", "chat", "idle"])
        finally:
            await engine.dispose()

    found = run(go())
    assert found["app"]["backlog"] == 1 and found["app"]["dead"] == 0
    assert 85 <= found["app"]["oldest_pending_seconds"] < 600
    assert found["chat"] == {"backlog": 0, "dead": 1, "oldest_pending_seconds": 0.0}
    assert "idle" not in found
    assert metrics.DELIVERIES_BACKLOG.labels("app")._value.get() == 1
    assert metrics.DELIVERIES_DEAD.labels("chat")._value.get() == 1
    assert metrics.DELIVERIES_DEAD.labels("idle")._value.get() == 0


def test_readyz_shows_deliveries_per_sink_and_is_degraded_by_dead_ones(database_url: str, tmp_path: Path):
    with InProcessService(database_url, tmp_path) as service:
        assert "deliveries" not in service.get("/readyz").json(), "no rows: nothing to show"
        add(database_url, {"sink": "app", "status": "pending", "next_attempt_at": OLD})
        body = service.get("/readyz").json()
        assert body["deliveries"]["app"]["backlog"] == 1 and body["status"] == "ready"
        add(database_url, {"sink": "chat", "status": "dead"})
        response = service.get("/readyz")
        body = response.json()
        assert response.status_code == 200 and body["status"] == "degraded"
        assert body["deliveries"]["chat"]["dead"] == 1
        assert any("chat" in problem and "dead" in problem for problem in body["problems"])


def test_the_forwarder_counts_outcomes_and_lag_per_sink_by_name(database_url: str, receiver: Receiver):
    sink = f"counted-{uuid.uuid4().hex[:8]}"  # its own series: the counters live for the whole test session
    receiver.answers.append((500, {}))
    configured = parse({"sink": [{"name": sink, "url": receiver.url(), "secret": SECRET, "retry_schedule": [0, 0]}]})
    add(
        database_url,
        {"sink": sink, "next_attempt_at": OLD, "created_at": NOW - timedelta(seconds=3)},
        {"sink": sink, "next_attempt_at": OLD, "created_at": NOW - timedelta(seconds=3)},
    )

    async def go() -> int:
        engine = create_engine(database_url)
        forwarder = Forwarder(engine, configured, batch_size=1)
        try:
            return await forwarder.drain()
        finally:
            await forwarder.close()
            await engine.dispose()

    run(go())
    text = generate_latest().decode()
    assert f'mps_deliveries_total{{outcome="retry",sink="{sink}"}} 1.0' in text
    assert f'mps_deliveries_total{{outcome="delivered",sink="{sink}"}} 2.0' in text
    assert f'mps_delivery_lag_seconds_count{{sink="{sink}"}} 2.0' in text
    assert f'mps_delivery_lag_seconds_bucket{{le="1.0",sink="{sink}"}} 0.0' in text, "3 s old when delivered"
    assert "127.0.0.1" not in "".join(line for line in text.splitlines() if line.startswith("mps_deliver"))


def test_backfill_pages_through_the_journal_and_names_live_tasks_by_their_notification_type(
    database_url: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(store_deliveries, "BACKFILL_BATCH", 2)  # pages of two: every boundary crossed
    run_ingest(
        database_url,
        [
            {"NotificationType": "ProcessEof", "TaskId": f"live-{number}", "ProcessEofInfo": {"ErrCode": 0}}
            for number in range(5)
        ],
    )
    live_only = Subscription(
        "live",
        frozenset({"notification.received", "task.updated", "task.finished", "task.failed"}),
        frozenset({"live"}),
        frozenset({"ProcessEof"}),
    )

    async def go() -> dict[str, int]:
        engine = for_writing(create_engine(database_url))
        try:
            async with engine.begin() as connection:
                return await store_deliveries.backfill(connection, live_only, datetime(2000, 1, 1, tzinfo=UTC))
        finally:
            await engine.dispose()

    assert run(go()) == {"notification.received": 5, "task": 5}
    rows = query(
        database_url, sa.select(deliveries.c.event, deliveries.c.task_id, deliveries.c.mps_type, deliveries.c.data)
    )
    assert sorted(row.task_id for row in rows if row.event == "notification.received") == [
        f"live-{n}" for n in range(5)
    ]
    tasks = [row for row in rows if row.event != "notification.received"]
    assert {row.mps_type for row in tasks} == {"ProcessEof"}
    assert sorted(row.data["task_id"] for row in tasks) == [f"live-{n}" for n in range(5)]
    assert {row.data["type"] for row in tasks} == {"ProcessEof"}
