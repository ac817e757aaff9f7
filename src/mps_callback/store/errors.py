"""Did the database refuse *this record*, or is the database itself unable to take writes?

The answer decides what happens to a notification that could not be written: a record
the database refuses (a value too long, a constraint) is retried a few times with
back-off and then set aside in quarantine for an operator; anything about the database
(down, unreachable, wrong password, missing database or table, read-only, disk full, too
many connections, locks) keeps the record in the spool until the database is back,
however long that takes. Getting this wrong one way quarantines everything during an
outage (silently losing the spool's protection); the other way only delays a bad record.
So only the database's own verdict on the data counts as a record refusal, by the
drivers' codes (the exception class alone does not tell: MySQL reports a trigger's
refusal and a lost connection both as OperationalError); everything else is about the
database. ``database_fault`` answers for an error in hand, with a probe write when the
error alone does not tell; the journal's drain and the projector both ask it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random

from mps_callback.store.tables import notifications

T = TypeVar("T")

#: MySQL/MariaDB error codes that refuse the row sent: NULL in a NOT NULL column, duplicate key,
#: out of range, truncated, incorrect value or string, too long, foreign key, invalid JSON,
#: CHECK constraint (MariaDB 4025, MySQL 3819), a trigger's SIGNAL, packet too large.
MYSQL_RECORD_REFUSALS = frozenset(
    {1048, 1062, 1153, 1264, 1265, 1292, 1301, 1366, 1406, 1451, 1452, 1644, 1690, 3140, 3819, 4025}
)
#: PostgreSQL SQLSTATE classes refusing the data: 22 data exception, 23 integrity constraint
#: violation, 54000 program limit exceeded (an index row or a jsonb value too large), P0001 a
#: trigger's RAISE EXCEPTION.
POSTGRES_RECORD_REFUSAL_PREFIXES = ("22", "23", "54000", "P0001")
#: SQLite's result codes for the same: constraints (a trigger's RAISE too), type mismatch, a
#: value over SQLITE_MAX_LENGTH.
SQLITE_RECORD_REFUSALS = ("SQLITE_CONSTRAINT", "SQLITE_MISMATCH", "SQLITE_TOOBIG")


#: MySQL/MariaDB codes that describe the database's state, whatever the record: an OS error
#: (3: a temporary or log file), disk full (1021; 1026/1030 a write or storage-engine error,
#: errno 28), out of memory (1037, 1038, 1041), too many connections (1040, 1203, 1226), access
#: denied (1044, 1045, 1142), unknown database (1049), shutdown (1053), unknown column (1054: a
#: schema not yet migrated), table full (1114), missing table (1146), lock wait and deadlock
#: (1205, 1213), interrupted or timed out (1317, 1969, 3024), read-only (1290, 1792, 1836),
#: connection killed (1927).
MYSQL_DATABASE_STATE = frozenset(
    {
        3,
        1021,
        1026,
        1030,
        1037,
        1038,
        1040,
        1041,
        1044,
        1045,
        1049,
        1053,
        1054,
        1114,
        1142,
        1146,
        1203,
        1205,
        1213,
        1226,
        1290,
        1317,
        1792,
        1836,
        1927,
        1969,
        3024,
    }
)
#: PostgreSQL: connection (08), read-only transaction (25006), authentication (28), no such
#: database (3D000), no such table or column (42P01, 42703), privilege (42501), serialization and deadlock
#: (40001, 40P01), resources: disk full, memory, connections (53), object state and lock (55),
#: operator intervention: shutdown, cannot connect now (57).
POSTGRES_DATABASE_STATE_PREFIXES = (
    "08",
    "25006",
    "28",
    "3D000",
    "42P01",
    "42703",
    "42501",
    "40001",
    "40P01",
    "53",
    "55",
    "57",
)
#: SQLite: full, read-only, cannot open, busy, locked, I/O error, permission.
SQLITE_DATABASE_STATE = (
    "SQLITE_FULL",
    "SQLITE_READONLY",
    "SQLITE_CANTOPEN",
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_IOERR",
    "SQLITE_PERM",
)


def is_database_state(error: BaseException) -> bool:
    """True when the error plainly describes the database, not the record (no need to probe).

    Between the two lists lie the ambiguous errors, above all a dropped connection: the
    database may have gone away, or this record's statement may have made the server drop
    it (larger than ``max_allowed_packet``). Callers settle those with a probe write.
    """
    if not isinstance(error, sa.exc.DBAPIError):
        return False
    original = error.orig
    code, state = _codes(original)
    if code is not None:
        return code in MYSQL_DATABASE_STATE
    if state is not None:
        return state.startswith(POSTGRES_DATABASE_STATE_PREFIXES)
    name = getattr(original, "sqlite_errorname", None)
    if isinstance(name, str) and name.startswith(SQLITE_DATABASE_STATE):
        return True
    return any(text in str(original) for text in ("no such table", "has no column named"))


#: A transaction that lost to another one over row locks (a deadlock, a serialization failure): both
#: servers' manuals say to run it again. Forwarders claiming side by side with SKIP LOCKED meet this on
#: MariaDB, whose index locks can cross between two claims of different rows.
MYSQL_CONFLICTS = frozenset({1213})
POSTGRES_CONFLICTS = ("40P01", "40001")
#: How many times such a transaction runs in all, a few random milliseconds apart.
CONFLICT_ATTEMPTS = 5


def is_conflict(error: BaseException) -> bool:
    """True when the database chose this transaction as a deadlock's victim: running it again is the cure."""
    if not isinstance(error, sa.exc.DBAPIError):
        return False
    code, state = _codes(error.orig)
    if code is not None:
        return code in MYSQL_CONFLICTS
    return state in POSTGRES_CONFLICTS


async def again_after_conflicts(transaction: Callable[[], Awaitable[T]]) -> T:
    """``transaction()`` (one whole transaction), run again while it loses to another over locks
    (:func:`is_conflict`), up to :data:`CONFLICT_ATTEMPTS` times in all; then its error."""
    retrying = AsyncRetrying(
        retry=retry_if_exception(is_conflict),
        stop=stop_after_attempt(CONFLICT_ATTEMPTS),
        wait=wait_random(0, 0.05),
        reraise=True,
    )

    async def once() -> T:  # a coroutine function: tenacity calls any other kind without awaiting it
        return await transaction()

    return await retrying(once)


def is_record_refusal(error: BaseException) -> bool:
    """True only when the database answered and refused the data it was sent."""
    if not isinstance(error, sa.exc.DBAPIError) or error.connection_invalidated:
        return False
    original = error.orig
    if original is None or isinstance(original, (OSError, TimeoutError)):
        return False
    code, state = _codes(original)
    if code is not None:
        return code in MYSQL_RECORD_REFUSALS
    if state is not None:
        return state.startswith(POSTGRES_RECORD_REFUSAL_PREFIXES)
    name = getattr(original, "sqlite_errorname", None)
    return isinstance(name, str) and name.startswith(SQLITE_RECORD_REFUSALS)


async def database_fault(engine: AsyncEngine, error: BaseException) -> str | None:
    """Why ``error`` was the database's doing; None when the database takes a write now, so the
    record that failed is to blame. An error that plainly describes the database needs no probe."""
    if is_database_state(error):
        return describe(error)
    try:
        await probe_write(engine)
    except Exception as probe_error:
        return describe(probe_error)
    return None


async def probe_write(engine: AsyncEngine) -> None:
    """Raise unless the journal takes a write now.

    An UPDATE that matches no row: refused like any write by a read-only database
    (PostgreSQL 25006, MySQL 1290, SQLite's read-only file), a missing table, a lost
    connection or a wrong password, while it changes nothing. ``SELECT 1`` would pass all of those.
    """
    async with engine.begin() as connection:
        await connection.execute(
            notifications.update().where(notifications.c.id == 0).values(batch_id=notifications.c.batch_id)
        )


def _codes(original: BaseException | None) -> tuple[int | None, str | None]:
    """The driver's error code: MySQL drivers raise (code, message), and asyncmy also sets a sqlstate, less
    precise, so a number wins; PostgreSQL drivers set a SQLSTATE (asyncpg ``sqlstate``, psycopg ``pgcode``)."""
    if original is None:
        return None, None
    code = original.args[0] if original.args else None
    if isinstance(code, int):
        return code, None
    state = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    return None, state if isinstance(state, str) else None


def describe(error: BaseException) -> str:
    """A short description for logs and the API: the driver's class and message, never the SQL or its parameters."""
    original = getattr(error, "orig", None) or error
    first_line = (str(original).splitlines() or [""])[0]
    return f"{type(original).__name__}: {first_line[:300]}"
