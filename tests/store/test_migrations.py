"""The migrations build exactly the tables the code declares, on every backend."""

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.pool import NullPool

from mps_callback.store.engine import create_engine
from mps_callback.store.migrate import upgrade
from mps_callback.store.tables import is_ours, metadata


def differences(url: str) -> list:
    """What Alembic would change to make the database match the declared tables (the old script's table aside)."""

    async def go() -> list:
        engine = create_engine(url, poolclass=NullPool)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(
                    lambda sync: compare_metadata(
                        MigrationContext.configure(sync, opts={"include_name": is_ours}), metadata
                    )
                )
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_migrated_schema_matches_the_tables(database_url: str):
    assert differences(database_url) == []


def test_upgrade_twice_is_a_no_op(database_url: str):
    upgrade(database_url)
    assert differences(database_url) == []
