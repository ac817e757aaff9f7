"""Identifiers compare byte for byte on every backend.

MPS's TaskIds are case-sensitive and may end in a space. MariaDB's default collation folds
case and pads with spaces, which made ``CaseTask-abc``, ``casetask-ABC`` and ``CaseTask-abc ``
one task (the later two never projected) and let a query for one TaskId answer with another.
SQLite and PostgreSQL compared byte-exactly already; the tests run there all the same.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from mps_callback.journal.write import write_rows
from mps_callback.store.engine import create_engine
from mps_callback.store.tables import metadata, notifications, tasks
from mps_callback.store.types import MARIADB_IDENTIFIER_COLLATION, Identifier
from tests.support.db import query
from tests.support.projection import run_ingest
from tests.support.service import InProcessService

#: Three TaskIds MariaDB's default collation took for one.
CASE_TASK_IDS = ["CaseTask-abc", "casetask-ABC", "CaseTask-abc "]
TOKEN = {"Authorization": "Bearer api-secret-1"}


def process_eof(task_id: str) -> dict[str, Any]:
    return {"NotificationType": "ProcessEof", "TaskId": task_id, "ProcessEofInfo": {"ErrCode": 0}}


def journal_row(dedupe_key: str) -> dict[str, Any]:
    """A journal row as the intake writes it, told apart only by its dedupe key."""
    return {
        "received_at": datetime.now(UTC),
        "kind": "live",
        "event_type": None,
        "notification_type": "ProcessEof",
        "task_id": "dedupe-task",
        "session_id": None,
        "session_context": None,
        "body": process_eof("dedupe-task"),
        "signature": "unsigned",
        "channel": "http",
        "wrapper": "none",
        "message_id": None,
        "delivery": {},
        "dedupe_key": dedupe_key,
    }


def test_task_ids_differing_in_case_or_trailing_space_are_three_tasks(database_url: str):
    run_ingest(database_url, [process_eof(task_id) for task_id in CASE_TASK_IDS])

    projected = query(database_url, sa.select(tasks.c.task_id, tasks.c.status, tasks.c.notification_count))
    assert sorted(projected) == sorted((task_id, "FINISH", 1) for task_id in CASE_TASK_IDS)
    for task_id in CASE_TASK_IDS:
        journaled = query(
            database_url,
            sa.select(notifications.c.task_id, notifications.c.projection_error).where(
                notifications.c.task_id == task_id, notifications.c.projected_at.is_not(None)
            ),
        )
        assert journaled == [(task_id, None)]


def test_dedupe_keys_differing_in_case_stay_distinct(database_url: str):
    keys = ["ab" * 32, "AB" * 32]

    async def write() -> dict[str, tuple[int, str]]:
        engine = create_engine(database_url, poolclass=NullPool)
        try:
            return (await write_rows(engine, [journal_row(key) for key in keys]))[1]
        finally:
            await engine.dispose()

    stored = asyncio.run(write())
    assert set(stored) == set(keys) and stored[keys[0]][0] != stored[keys[1]][0]
    assert sorted(query(database_url, sa.select(notifications.c.dedupe_key))) == sorted((key,) for key in keys)


def test_query_api_answers_only_for_the_exact_task_id(database_url: str, tmp_path: Path):
    run_ingest(database_url, [process_eof("CaseTask-abc")])
    with InProcessService(database_url, tmp_path, api_token="api-secret-1") as service:
        found = service.get("/v1/tasks/CaseTask-abc", headers=TOKEN)
        assert found.status_code == 200 and found.json()["task_id"] == "CaseTask-abc"
        for other in ("CASETASK-ABC", "CaseTask-abc%20"):
            assert service.get(f"/v1/tasks/{other}", headers=TOKEN).status_code == 404, other
            assert service.get(f"/v1/tasks/{other}/notifications", headers=TOKEN).status_code == 404, other


def test_identifier_columns_carry_the_byte_exact_collation(database_url: str):
    """Migration 0004 and tables.py agree column by column (compare_metadata lets a missing COLLATE pass)."""
    if make_url(database_url).get_backend_name() != "mysql":
        pytest.skip("SQLite and PostgreSQL compare VARCHAR byte-exactly: no collation to set")
    declared = {
        (table.name, column.name)
        for table in metadata.tables.values()
        for column in table.c
        if isinstance(column.type, Identifier)
    }
    migrated = query(
        database_url,
        sa.text(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = DATABASE() AND collation_name = :collation AND table_name <> 'mps_task_result'"
        ).bindparams(collation=MARIADB_IDENTIFIER_COLLATION),
    )
    # 19 up to 0005; 0006 adds deliveries.event_id and deliveries.task_id
    assert len(declared) == 21 and {tuple(row) for row in migrated} == declared
