"""The journal INSERT tells each key's row id and writer batch, whether it wrote the row or found it.

It returns what it wrote (``INSERT ... RETURNING``; MariaDB's no-op update also returns the rows
it found); only keys it did not return are looked up. These tests hold the receipts to what the
table holds, on every backend, across statement pages (SQLAlchemy sends 1,000 rows a statement).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from mps_callback.journal.write import statements_of, write_rows
from mps_callback.store.engine import create_engine
from mps_callback.store.tables import notifications
from tests.support.bodies import journal_row
from tests.support.db import query


def write(database_url: str, keys: list[str]) -> tuple[str, dict[str, tuple[int, str]]]:
    async def run() -> tuple[str, dict[str, tuple[int, str]]]:
        engine = create_engine(database_url, poolclass=NullPool)
        try:
            rows = [
                {**journal_row(key), "received_at": datetime.fromisoformat(journal_row(key)["received_at"])}
                for key in keys
            ]
            return await write_rows(engine, rows)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def table(database_url: str) -> dict[str, tuple[int, str]]:
    columns = (notifications.c.dedupe_key, notifications.c.id, notifications.c.batch_id)
    return {key: (row_id, batch) for key, row_id, batch in query(database_url, sa.select(*columns))}


def test_each_key_gets_its_row_and_writer_whether_new_repeated_or_already_there(database_url: str):
    first_batch, first = write(database_url, ["a" * 64, "b" * 64, "a" * 64])
    second_batch, second = write(database_url, ["b" * 64, "c" * 64])

    assert first == {key: table(database_url)[key] for key in ("a" * 64, "b" * 64)}
    assert {writer for _, writer in first.values()} == {first_batch}
    assert second["b" * 64] == first["b" * 64]  # found, written by the first batch
    assert second["c" * 64] == table(database_url)["c" * 64] and second["c" * 64][1] == second_batch


def test_a_batch_larger_than_one_statement_page_gets_every_receipt(database_url: str):
    old = [f"{index:064x}" for index in range(0, 2500, 2)]  # every other key is already there
    write(database_url, old)
    keys = [f"{index:064x}" for index in range(2500)]

    batch, stored = write(database_url, keys)

    assert stored == table(database_url) and len(stored) == 2500
    assert sum(writer == batch for _, writer in stored.values()) == 1250


def test_rows_larger_together_than_a_packet_go_in_separate_statements(database_url: str):
    """Two 9 MB bodies in one batch: one multi-row INSERT would be 18 MB, past MariaDB's default 16 MiB packet."""
    keys = ["d" * 64, "e" * 64]

    async def run() -> dict[str, tuple[int, str]]:
        engine = create_engine(database_url, poolclass=NullPool)
        try:
            rows = [
                {**journal_row(key), "received_at": datetime(2026, 11, 1), "body": {"Text": key[0] * 9_000_000}}
                for key in keys
            ]
            return (await write_rows(engine, [{**row, "body_bytes": 9_000_020} for row in rows]))[1]
        finally:
            await engine.dispose()

    assert asyncio.run(run()) == table(database_url) and len(table(database_url)) == 2


def test_statements_hold_about_a_megabyte_of_bodies_or_one_larger_row():
    rows = [{"body_bytes": size, "body": {}} for size in (400_000, 400_000, 400_000, 3_000_000, 10, 0)]
    assert [[row["body_bytes"] for row in group] for group in statements_of(rows)] == [
        [400_000, 400_000],
        [400_000],
        [3_000_000],
        [10, 0],
    ]
