"""Alembic environment: runs migrations over the same async engine the service uses."""

from __future__ import annotations

import asyncio
import logging
import warnings

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from mps_callback.store.engine import create_engine
from mps_callback.store.tables import is_ours, metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, include_name=is_ours)
    with context.begin_transaction():
        context.run_migrations()


# MariaDB notes that it keeps no name for a primary key; PostgreSQL does, so the names stay.
warnings.filterwarnings("ignore", message=r"Name '.*' ignored for PRIMARY key")
logging.getLogger("asyncmy").setLevel(logging.ERROR)  # asyncmy logs the same note as a warning


async def _main() -> None:
    engine = create_engine(context.config.attributes["database_url"], poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


asyncio.run(_main())
