"""A transaction that loses a deadlock is run again (``store.errors.again_after_conflicts``).

The deadlock here is a real one, made with two connections that each lock a row the other then
wants: the victim's error, as the driver raises it, must read as a conflict; other errors must not.
"""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from mps_callback.store.engine import create_engine
from mps_callback.store.errors import CONFLICT_ATTEMPTS, again_after_conflicts, is_conflict
from tests.support.db import run


async def deadlock_victim(url: str) -> BaseException:
    """The error of whichever of two crossing transactions the database gave up."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        async with engine.begin() as setup:
            await setup.execute(sa.text("CREATE TABLE crossing (id INTEGER PRIMARY KEY, v INTEGER)"))
            await setup.execute(sa.text("INSERT INTO crossing VALUES (1, 0), (2, 0)"))
        first, second = await engine.connect(), await engine.connect()
        try:
            await first.begin()
            await second.begin()
            await first.execute(sa.text("UPDATE crossing SET v = 1 WHERE id = 1"))
            await second.execute(sa.text("UPDATE crossing SET v = 1 WHERE id = 2"))
            waiting = asyncio.create_task(first.execute(sa.text("UPDATE crossing SET v = 2 WHERE id = 2")))
            await asyncio.sleep(0.3)
            crossing = asyncio.create_task(second.execute(sa.text("UPDATE crossing SET v = 2 WHERE id = 1")))
            outcomes = await asyncio.gather(waiting, crossing, return_exceptions=True)
            [victim] = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
            return victim
        finally:
            for connection in (first, second):
                await connection.rollback()
                await connection.close()
    finally:
        await engine.dispose()


def test_the_victim_of_a_real_deadlock_is_a_conflict_and_other_errors_are_not(database_url: str):
    if make_url(database_url).get_backend_name() == "sqlite":
        pytest.skip("SQLite has one writer: two transactions never hold crossing locks")
    victim = run(deadlock_victim(database_url))
    assert is_conflict(victim), victim
    assert not is_conflict(sa.exc.DBAPIError("UPDATE ...", {}, Exception(1062, "Duplicate entry")))
    assert not is_conflict(ValueError("not a database error"))


def test_a_conflict_is_run_again_and_anything_else_is_raised_at_once():
    conflict = sa.exc.OperationalError("UPDATE ...", {}, Exception(1213, "Deadlock found"))
    calls: list[int] = []

    async def flaky(failures: int, error: BaseException) -> str:
        async def transaction() -> str:
            calls.append(1)
            if len(calls) <= failures:
                raise error
            return "done"

        return await again_after_conflicts(transaction)

    assert run(flaky(2, conflict)) == "done" and len(calls) == 3
    calls.clear()
    with pytest.raises(sa.exc.OperationalError):
        run(flaky(99, conflict))  # gives up after CONFLICT_ATTEMPTS, with the database's error
    assert len(calls) == CONFLICT_ATTEMPTS
    calls.clear()
    with pytest.raises(ValueError, match="a bug"):
        run(flaky(1, ValueError("a bug")))
    assert calls == [1]
