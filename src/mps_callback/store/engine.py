"""Build the async engine from ``MPS_DATABASE_URL``.

Users write the URLs they know (``sqlite:///x.db``, ``mysql://...``, ``postgresql://...``);
the async driver for each is chosen here so nobody has to know driver names.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "mysql": "mysql+asyncmy",
    "mariadb": "mariadb+asyncmy",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


def async_url(url: str | URL) -> URL:
    """The URL with its async driver; an explicit ``+driver`` is respected."""
    parsed = make_url(url) if isinstance(url, str) else url
    if "+" not in parsed.drivername:
        parsed = parsed.set(drivername=ASYNC_DRIVERS.get(parsed.drivername, parsed.drivername))
    if parsed.get_backend_name() in ("mysql", "mariadb") and "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed


def create_engine(url: str | URL, **options: Any) -> AsyncEngine:
    """An engine with JSON through orjson and, on SQLite, WAL with durable commits."""
    target = async_url(url)
    options.setdefault("pool_pre_ping", True)
    if target.get_backend_name() == "sqlite":
        options.setdefault("connect_args", {"timeout": 30})
        _create_private(target.database)
    elif "poolclass" not in options:
        options.setdefault("pool_size", 10)
        options.setdefault("max_overflow", 10)
        options.setdefault("pool_recycle", 3600)
    engine = create_async_engine(target, json_serializer=_dumps, json_deserializer=orjson.loads, **options)
    if target.get_backend_name() == "sqlite":
        sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine.sync_engine, "begin", _sqlite_begin)
    elif target.get_backend_name() in ("mysql", "mariadb"):
        sa.event.listen(engine.sync_engine, "connect", _mysql_session, insert=True)
    return engine


#: A new SQLite database is readable by this user only (it holds every notification);
#: SQLite gives its -wal and -shm files the mode of the database file.
SQLITE_FILE_MODE = 0o600


def _create_private(database: str | None) -> None:
    """Create the SQLite file 0600 before the first connect would create it 0644 (umask).

    An existing file is left as it is (the operator may have chosen its mode); so is a
    missing directory, which SQLite reports as before.
    """
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    try:
        descriptor = os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SQLITE_FILE_MODE)
    except OSError:  # exists already, or SQLite will say why it cannot open it
        return
    try:
        os.fchmod(descriptor, SQLITE_FILE_MODE)
    finally:
        os.close(descriptor)


def for_writing(engine: AsyncEngine) -> AsyncEngine:
    """The engine for read-then-write transactions (journal, projector).

    On SQLite they begin with ``BEGIN IMMEDIATE``: the write lock is taken before the
    first read, so two writers never act on the same stale read. Other databases lock
    rows instead (``FOR UPDATE``) and ignore the option.
    """
    return engine.execution_options(sqlite_immediate=True)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers run beside the writer; synchronous=FULL makes a commit survive power loss.

    ``isolation_level = None`` stops the sqlite3 module from opening transactions itself
    (lazily, at the first write: a claim read before it would run outside the transaction);
    ``_sqlite_begin`` opens them instead, as SQLAlchemy's documentation recommends.
    """
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=30000", "foreign_keys=ON"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _mysql_session(dbapi_connection: Any, _record: Any) -> None:
    """NO_BACKSLASH_ESCAPES: strings are then escaped by doubling quotes, one fast replace.

    With backslash escapes the MySQL drivers escape every string character by character
    (``str.translate``): ~140 µs for a 5 KB notification body, most of the cost of a
    journal insert. Bound parameters stay exactly as safe; only the escaping rule changes.
    """
    cursor = dbapi_connection.cursor()
    cursor.execute("SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',NO_BACKSLASH_ESCAPES')")
    cursor.close()


def _sqlite_begin(connection: sa.Connection) -> None:
    immediate = connection.get_execution_options().get("sqlite_immediate", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
