"""The migrations build exactly the tables the code declares, on every backend."""

from alembic import command
from sqlalchemy.engine import make_url

from mps_callback.store.migrate import alembic_config, upgrade
from tests.support.db import execute, query
from tests.support.schema import differences


def test_migrated_schema_matches_the_tables(database_url: str):
    assert differences(database_url) == []


def test_upgrade_twice_is_a_no_op(database_url: str):
    upgrade(database_url)
    assert differences(database_url) == []


def test_0006_outbox_goes_down_and_up_again_keeping_the_tasks(database_url: str):
    """Down to 0005 drops the outbox tables and the event sequence, and nothing else; up brings them back."""
    execute(
        database_url,
        "INSERT INTO tasks (task_id, kind, status, failed, first_received_at, last_received_at, "
        "notification_count, state_key, session_key) "
        "VALUES ('kept', 'vod', 'FINISH', false, '2026-01-01 00:00:00', '2026-01-01 00:00:00', 1, 'k', 's')",
    )
    command.downgrade(alembic_config(database_url), "0005")
    tables = {row[0] for row in query(database_url, _TABLES[_backend(database_url)])}
    assert {"deliveries", "delivery_attempts"}.isdisjoint(tables) and "tasks" in tables
    assert query(database_url, "SELECT task_id FROM tasks") == [("kept",)]

    upgrade(database_url)
    assert differences(database_url) == []
    assert query(database_url, "SELECT task_id, event_sequence FROM tasks") == [("kept", 0)]
    assert query(database_url, "SELECT COUNT(*) FROM deliveries") == [(0,)]


_TABLES = {
    "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table'",
    "mysql": "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()",
    "postgresql": "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
}


def _backend(url: str) -> str:
    return make_url(url).get_backend_name()
