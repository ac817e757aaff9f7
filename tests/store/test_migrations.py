"""The migrations build exactly the tables the code declares, on every backend."""

from mps_callback.store.migrate import upgrade
from tests.support.schema import differences


def test_migrated_schema_matches_the_tables(database_url: str):
    assert differences(database_url) == []


def test_upgrade_twice_is_a_no_op(database_url: str):
    upgrade(database_url)
    assert differences(database_url) == []
