"""The schema as the database holds it: differences from the declared tables, and the old script's table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.pool import NullPool

from mps_callback.store.engine import create_engine
from mps_callback.store.tables import is_ours, metadata
from tests.support.db import execute, query, run, scratch_database


def differences(url: str) -> list[Any]:
    """What Alembic would change to make the database match the declared tables (the old script's table aside)."""

    async def go() -> list[Any]:
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

    return run(go())


# ---------------------------------------------------------------- the old Flask script's table

#: The old script's table as it created it, in each backend's words.
OLD_TABLE = {
    "mysql": "id BIGINT AUTO_INCREMENT PRIMARY KEY",
    "postgres": "id BIGSERIAL PRIMARY KEY",
    "sqlite": "id INTEGER PRIMARY KEY AUTOINCREMENT",
}
OLD_COLUMNS = ("task_id", "status", "create_time", "video_name", "url", "output_path", "vtt_url", "en_vtt", "username")
OLD_ROWS = [
    (
        "old-task-1",
        "FINISH",
        "2023-04-05 06:07:08",
        "lecture.mp4",
        "https://cdn.test/lecture.mp4",
        "/out/lecture.mp4",
        "https://cdn.test/lecture.vtt",
        "https://cdn.test/lecture.en.vtt",
        "alice",
    ),
    ("old-task-2", "PROCESSING", "2023-04-06 00:00:00", "talk.mp4", None, None, None, None, "bob"),
    ("shared-task", "PROCESSING", "2023-04-07 00:00:00", "both.mp4", None, None, None, None, "carol"),
]


def create_old_table(url: str, backend: str) -> None:
    """The table and rows the Flask script left, before mps-callback ever ran."""
    placeholders = ", ".join(f":{name}" for name in OLD_COLUMNS)
    insert = sa.text(f"INSERT INTO mps_task_result ({', '.join(OLD_COLUMNS)}) VALUES ({placeholders})")
    execute(
        url,
        f"CREATE TABLE mps_task_result ({OLD_TABLE[backend]}, task_id VARCHAR(128) NOT NULL UNIQUE, "
        "status VARCHAR(32), create_time VARCHAR(64), video_name VARCHAR(512), url TEXT, output_path TEXT, "
        "vtt_url TEXT, en_vtt TEXT, username VARCHAR(1024))",
    )

    async def fill() -> None:
        engine = create_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.execute(insert, [dict(zip(OLD_COLUMNS, row, strict=True)) for row in OLD_ROWS])
        finally:
            await engine.dispose()

    run(fill())


def never_migrated(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of ``backend``, dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
    else:
        yield from scratch_database(backend)


def view_rows(url: str) -> dict[str, tuple[Any, ...]]:
    rows = query(url, "SELECT * FROM mps_task_result")
    by_task = {row[0]: tuple(row) for row in rows}
    assert len(by_task) == len(rows), "a task shows more than once"
    return by_task
