"""Is a database error worth another try (the server away, busy or locked) or final (a refused row)?

Only the database's own verdict on a statement is final. The exception class alone does
not tell: MySQL reports a trigger's refusal and a lost connection both as
OperationalError; the drivers' codes do. Anything that is not a DBAPI error at all (a
driver's RuntimeError on a reset socket, a timeout) says nothing about the row, so it is
transient: the notification waits in the spool rather than being set aside.
"""

from __future__ import annotations

import sqlalchemy as sa

#: MySQL/MariaDB: connection lost or refused, server shutting down, too many connections, lock wait, deadlock.
MYSQL_TRANSIENT = frozenset({1040, 1053, 1205, 1213, 1927, 2002, 2003, 2005, 2006, 2013, 2055})
#: PostgreSQL SQLSTATE classes and codes: connection exceptions, serialization failure, deadlock,
#: lock not available, too many connections, operator intervention (shutdown, cannot connect now).
POSTGRES_TRANSIENT_PREFIXES = ("08", "40001", "40P01", "55P03", "53300", "57P")
SQLITE_TRANSIENT_MESSAGES = ("database is locked", "database table is locked", "disk i/o error", "unable to open")


def is_transient(error: BaseException) -> bool:
    if not isinstance(error, sa.exc.DBAPIError):
        return True
    if error.connection_invalidated:
        return True
    original = error.orig
    if isinstance(original, (OSError, TimeoutError)):
        return True
    state = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    if isinstance(state, str):
        return state.startswith(POSTGRES_TRANSIENT_PREFIXES)
    code = original.args[0] if original is not None and original.args else None
    if isinstance(code, int):
        return code in MYSQL_TRANSIENT
    message = str(original).lower()
    return any(text in message for text in SQLITE_TRANSIENT_MESSAGES)
