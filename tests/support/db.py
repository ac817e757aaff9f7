"""The real databases the tests run on, and a cheap way to look into them.

``query`` and ``execute`` keep one engine per database URL on one event loop of their own
(a thread), instead of opening an engine, a connection and an event loop per call; the
engines are disposed when a scratch database is dropped and at the end of the session.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool

from mps_callback.store.engine import create_engine
from mps_callback.store.migrate import upgrade

T = TypeVar("T")

SERVER_URLS = {
    "mysql": os.environ.get("MPS_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
    "postgres": os.environ.get("MPS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
}
ON_CI = os.environ.get("CI", "").lower() == "true"
ALL_BACKENDS = ("sqlite", "mysql", "postgres")


def backends() -> list[str]:
    """The backends database fixtures are parametrised over: all three, or ``MPS_TEST_BACKENDS`` (comma-separated).

    ``make test-fast`` sets ``MPS_TEST_BACKENDS=sqlite`` for the inner loop; CI always runs all three.
    """
    chosen = [name.strip() for name in os.environ.get("MPS_TEST_BACKENDS", "").split(",") if name.strip()]
    if ON_CI or not chosen:
        return list(ALL_BACKENDS)
    unknown = set(chosen) - set(ALL_BACKENDS)
    if unknown:
        raise ValueError(f"MPS_TEST_BACKENDS: unknown {sorted(unknown)}; choose from {ALL_BACKENDS}")
    return chosen


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """``coroutine`` on a fresh event loop (for code under test that builds its own engines)."""
    return asyncio.run(coroutine)


# ---------------------------------------------------------------- one engine per database


_NO_STATEMENT_CACHE = {"prepared_statement_cache_size": 0}


class _Helpers:
    """An event loop in a daemon thread with one engine per URL: every ``query``/``execute`` runs there."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.engines: dict[str, AsyncEngine] = {}
        threading.Thread(target=self.loop.run_forever, name="test-db-helpers", daemon=True).start()

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def engine(self, url: str) -> AsyncEngine:
        if url not in self.engines:
            # No prepared-statement cache on PostgreSQL: tests change the schema under the helpers'
            # long-lived connections (a downgrade, a view recreated), which invalidates cached plans.
            postgres = make_url(url).get_backend_name() == "postgresql"
            self.engines[url] = create_engine(url, **({"connect_args": _NO_STATEMENT_CACHE} if postgres else {}))
        return self.engines[url]

    def forget(self, url: str) -> None:
        if (engine := self.engines.pop(url, None)) is not None:
            self.call(engine.dispose())


_helpers = _Helpers()


def forget_engine(url: str) -> None:
    """Close the helpers' connections to ``url`` (before its database is dropped or its file removed)."""
    _helpers.forget(url)


def dispose_engines() -> None:
    for url in list(_helpers.engines):
        _helpers.forget(url)


def query(url: str, statement: Any) -> list[Any]:
    """Rows of ``statement`` (SQLAlchemy Core or SQL text) run against ``url``."""
    if isinstance(statement, str):
        statement = sa.text(statement)

    async def fetch() -> list[Any]:
        async with _helpers.engine(url).connect() as connection:
            return list(await connection.execute(statement))

    return _helpers.call(fetch())


def execute(url: str, *statements: str) -> None:
    """Run ``statements`` against ``url`` in one transaction."""

    async def go() -> None:
        async with _helpers.engine(url).begin() as connection:
            for statement in statements:
                await connection.execute(sa.text(statement))

    _helpers.call(go())


def count(url: str, table: str = "notifications", where: str = "") -> int:
    """Rows in ``table`` (optionally ``WHERE where``)."""
    return int(query(url, f"SELECT COUNT(*) FROM {table}" + (f" WHERE {where}" if where else ""))[0][0])


# ---------------------------------------------------------------- scratch databases


async def admin(url: str, statement: str) -> None:
    """One statement outside a transaction (CREATE/DROP DATABASE), on a connection of its own."""
    engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(sa.text(statement))
    finally:
        await engine.dispose()


def scratch_database(backend: str) -> Iterator[str]:
    """A fresh, empty database on the ``backend`` server, dropped afterwards."""
    server_url = make_url(SERVER_URLS[backend])
    name = f"mps_test_{uuid.uuid4().hex[:10]}"
    try:
        run(admin(server_url.render_as_string(hide_password=False), f"CREATE DATABASE {name}"))
    except (OSError, sa.exc.OperationalError, sa.exc.InterfaceError) as error:
        if ON_CI:
            pytest.fail(f"{backend} unreachable on CI ({SERVER_URLS[backend]}): {error}")
        pytest.skip(f"{backend} unreachable: {error}")
    url = server_url.set(database=name).render_as_string(hide_password=False)
    yield url
    forget_engine(url)
    # FORCE: a service a test killed with -9 may still be closing its sessions.
    force = " WITH (FORCE)" if backend == "postgres" else ""
    run(admin(server_url.render_as_string(hide_password=False), f"DROP DATABASE {name}{force}"))


def migrated(backend: str, directory: Path) -> Iterator[str]:
    """A migrated, empty database of ``backend`` (SQLite: a file in ``directory``), removed afterwards."""
    if backend == "sqlite":
        url = f"sqlite:///{directory / 'journal.db'}"
        upgrade(url)
        yield url
        forget_engine(url)
        return
    for url in scratch_database(backend):
        upgrade(url)
        yield url


# ---------------------------------------------------------------- making the database refuse


def refuse_inserts(url: str, task_id: str, table: str = "notifications") -> None:
    """Make the real database refuse inserts of one TaskId into ``table``, as a full disk or a bad row would."""
    trigger = f"refuse_{table}"
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        execute(
            url,
            f"CREATE TRIGGER {trigger} BEFORE INSERT ON {table} WHEN NEW.task_id = '{task_id}' "
            "BEGIN SELECT RAISE(ABORT, 'refused by test'); END",
        )
    elif backend == "postgresql":
        execute(
            url,
            f"CREATE FUNCTION {trigger}() RETURNS trigger AS $$ BEGIN "
            f"IF NEW.task_id = '{task_id}' THEN RAISE EXCEPTION 'refused by test'; END IF; RETURN NEW; END $$ "
            "LANGUAGE plpgsql",
            f"CREATE TRIGGER {trigger} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {trigger}()",
        )
    else:
        execute(
            url,
            f"CREATE TRIGGER {trigger} BEFORE INSERT ON {table} FOR EACH ROW BEGIN "
            f"IF NEW.task_id = '{task_id}' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by test'; "
            "END IF; END",
        )


def allow_inserts(url: str, table: str = "notifications") -> None:
    """Undo :func:`refuse_inserts`."""
    trigger = f"refuse_{table}"
    on_postgres = make_url(url).get_backend_name() == "postgresql"
    execute(url, f"DROP TRIGGER {trigger} ON {table}" if on_postgres else f"DROP TRIGGER {trigger}")
