"""Taking over the old Flask script's ``mps_task_result`` table, on every backend.

The upgrade used to stop at CREATE VIEW (the name was taken), half-migrated on MariaDB.
Now the table is renamed ``mps_task_result_legacy`` and the view shows its rows beside ours,
so the script's readers keep their history and see new tasks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from mps_callback.store.engine import create_engine
from mps_callback.store.migrate import alembic_config, upgrade
from tests.support.db import backends, execute, query, run
from tests.support.projection import run_ingest
from tests.support.schema import OLD_COLUMNS, OLD_ROWS, OLD_TABLE, differences, never_migrated, view_rows


def process_eof(task_id: str) -> dict:
    return {"NotificationType": "ProcessEof", "TaskId": task_id, "ProcessEofInfo": {"ErrCode": 0}}


def relations(url: str) -> tuple[set[str], set[str]]:
    async def go() -> tuple[set[str], set[str]]:
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(
                    lambda sync: (set(sa.inspect(sync).get_table_names()), set(sa.inspect(sync).get_view_names()))
                )
        finally:
            await engine.dispose()

    return run(go())


def test_upgrade_keeps_the_old_table_and_the_view_shows_its_rows_and_ours(old_script_database: str):
    url = old_script_database
    upgrade(url)
    tables, views = relations(url)
    assert "mps_task_result_legacy" in tables and "mps_task_result" not in tables and "mps_task_result" in views
    assert differences(url) == []

    run_ingest(url, [process_eof("shared-task"), process_eof("new-task")])
    rows = view_rows(url)
    assert set(rows) == {"old-task-1", "old-task-2", "shared-task", "new-task"}
    assert rows["old-task-1"] == OLD_ROWS[0] and rows["old-task-2"] == OLD_ROWS[1]
    assert rows["shared-task"][1] == "FINISH" and rows["shared-task"][8] is None  # ours, not the old row
    assert rows["new-task"][1] == "FINISH" and rows["new-task"][2].startswith("20")  # create_time as text


@pytest.mark.process
def test_db_upgrade_twice_over_the_old_table_is_a_no_op(old_script_database: str):
    url = old_script_database
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPS_")} | {"MPS_DATABASE_URL": url}
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-m", "mps_callback", "db", "upgrade"],
            env=env,
            check=False,  # asserted below, with stderr
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
    assert view_rows(url) == {row[0]: row for row in OLD_ROWS}
    assert differences(url) == []


def test_downgrade_gives_the_old_script_its_table_back(old_script_database: str):
    url = old_script_database
    upgrade(url)
    command.downgrade(alembic_config(url), "0001")
    tables, views = relations(url)
    assert "mps_task_result" in tables and "mps_task_result_legacy" not in tables and not views
    assert query(url, f"SELECT {', '.join(OLD_COLUMNS)} FROM mps_task_result ORDER BY id") == OLD_ROWS


@pytest.fixture(params=backends())
def older_script_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An older script's table: only some of the columns (no create_time, video_name, en_vtt)."""
    for url in never_migrated(request.param, tmp_path):
        execute(
            url,
            f"CREATE TABLE mps_task_result ({OLD_TABLE[request.param]}, task_id VARCHAR(128) NOT NULL, "
            "status VARCHAR(32), url TEXT, username VARCHAR(64))",
            "INSERT INTO mps_task_result (task_id, status, url, username) VALUES ('older-1', 'FINISH', 'u', 'dan')",
        )
        yield url


def test_an_older_table_with_fewer_columns_is_taken_over_with_nulls(older_script_database: str):
    """Found by an adversarial pass: the view named the missing columns, so MariaDB failed the upgrade
    (after renaming the table, leaving no mps_task_result at all) and SQLite failed every read."""
    url = older_script_database
    upgrade(url)
    run_ingest(url, [process_eof("new-task")])
    rows = view_rows(url)
    assert rows["older-1"] == ("older-1", "FINISH", None, None, "u", None, None, None, "dan")
    assert rows["new-task"][1] == "FINISH"
    assert differences(url) == []
