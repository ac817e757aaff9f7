"""Migrations run again after a failure part-way and finish the job.

MariaDB commits each DDL statement on its own: a migration that fails half-way keeps its
first steps while ``alembic_version`` still names the revision before, and the next start
ran those steps again ("duplicate column" 1060, for ever). Every step now checks first.
SQLite and PostgreSQL roll a failed migration back; the same tests hold there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.migration import MigrationContext
from alembic.operations import Operations
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from mps_callback.store.engine import create_engine
from mps_callback.store.migrate import alembic_config, upgrade
from mps_callback.store.tables import notifications
from mps_callback.store.types import MARIADB_IDENTIFIER_COLLATION
from tests.support.db import backends, execute, query, run, scratch_database
from tests.support.projection import run_ingest
from tests.support.schema import differences


@pytest.fixture(params=backends())
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with nothing in it, not even ``alembic_version``."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
    else:
        yield from scratch_database(request.param)


def revision(url: str) -> str:
    return query(url, "SELECT version_num FROM alembic_version")[0][0]


def head(url: str) -> str:
    """The newest revision: where a finished upgrade stands."""
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def by_hand(url: str, step: Callable[[Operations], object]) -> None:
    """Run ``step(op)`` with Alembic's operations, outside any migration: a step a failed run left done."""

    async def go() -> None:
        engine = create_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(lambda sync: step(Operations(MigrationContext.configure(sync))))
        finally:
            await engine.dispose()

    run(go())


def test_upgrade_finishes_0002_after_it_failed_part_way(empty_database: str):
    url = empty_database
    upgrade(url, "0001")
    execute(url, "CREATE VIEW subtasks AS SELECT 1 AS x")  # 0002 stops at its third table
    with pytest.raises(sa.exc.DatabaseError):
        upgrade(url)
    if make_url(url).get_backend_name() == "mysql":  # what MariaDB kept: the old code's dead end
        assert revision(url) == "0001"
        assert query(url, "SELECT COUNT(projected_at) FROM notifications") == [(0,)]
    execute(url, "DROP VIEW subtasks")

    upgrade(url)
    assert revision(url) == head(url) and differences(url) == []


def test_upgrade_finishes_0002_when_some_of_its_columns_are_there(empty_database: str):
    url = empty_database
    upgrade(url, "0001")
    by_hand(
        url,
        lambda op: [
            op.add_column("notifications", notifications.c[name]._copy())
            for name in ("projected_at", "projection_error")
        ],
    )
    upgrade(url)
    assert revision(url) == head(url) and differences(url) == []


def test_every_migration_runs_again_over_its_own_work(empty_database: str):
    """The worst case: all of it done, none of it recorded. Every step finds its work done."""
    url = empty_database
    upgrade(url)
    run_ingest(url, [{"NotificationType": "ProcessEof", "TaskId": "kept", "ProcessEofInfo": {"ErrCode": 0}}])
    command.stamp(alembic_config(url), "base", purge=True)

    upgrade(url)
    assert revision(url) == head(url) and differences(url) == []
    assert query(url, "SELECT task_id, status FROM mps_task_result") == [("kept", "FINISH")]


@pytest.mark.parametrize("empty_database", ["mysql"], indirect=True)
def test_upgrade_finishes_0004_after_some_columns_were_converted(empty_database: str):
    """0004 changes collations on MariaDB/MySQL only; elsewhere it has nothing to redo."""
    url = empty_database
    upgrade(url, "0003")
    execute(url, f"ALTER TABLE tasks MODIFY task_id VARCHAR(255) COLLATE {MARIADB_IDENTIFIER_COLLATION} NOT NULL")
    upgrade(url)
    assert revision(url) == head(url) and differences(url) == []
    converted = query(
        url,
        sa.text(
            "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE() "
            "AND table_name NOT IN ('mps_task_result', 'deliveries', 'delivery_attempts') "  # 0006 made those
            "AND collation_name = :collation"
        ).bindparams(collation=MARIADB_IDENTIFIER_COLLATION),
    )
    assert converted == [(19,)]


def test_projections_under_the_old_state_keys_are_rebuilt_by_0003(database_url: str):
    """Before 0003 a state key was ``rank:dedupe key``; such keys do not compare with the new ones,
    so the upgrade has the journal projected again (the projector rebuilds the same tasks)."""
    run_ingest(
        database_url, [{"NotificationType": "ProcessEof", "TaskId": "old-keys", "ProcessEofInfo": {"ErrCode": 0}}]
    )
    command.downgrade(alembic_config(database_url), "0002")
    execute(database_url, "UPDATE tasks SET state_key = '0002:" + "a" * 64 + "'")
    upgrade(database_url)
    assert query(database_url, "SELECT COUNT(*) FROM tasks") == [(0,)]
    assert query(database_url, "SELECT COUNT(*) FROM notifications WHERE projected_at IS NULL") == [(1,)]
    run_ingest(database_url, [])
    assert query(database_url, "SELECT task_id, status FROM tasks") == [("old-keys", "FINISH")]
