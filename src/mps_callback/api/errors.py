"""Database errors on the query API answer JSON, not a plain-text 500.

While the database is down (or not migrated yet: serve starts without it) a query cannot
be answered now but can be soon: 503 with ``Retry-After``, ``{"detail": ...}`` like every
other answer of the API. A refusal of the data sent (a value the database will not take
in a comparison) is the request's fault: 422. The detail names the driver's error class
and first line, never the SQL or its parameters (:func:`store.errors.describe`).
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from fastapi import Request
from fastapi.responses import JSONResponse

from mps_callback.store.errors import describe, is_record_refusal

log = logging.getLogger("mps_callback.api")

#: What a query route may meet when the database is away: SQLAlchemy's wrapped driver errors
#: (OperationalError, InterfaceError and every other DBAPIError), and the bare OSError asyncpg
#: raises when nothing listens on the port (TimeoutError and ConnectionError are OSErrors).
DATABASE_ERRORS: tuple[type[Exception], ...] = (sa.exc.DBAPIError, OSError)

RETRY_AFTER_SECONDS = "5"


async def database_error(request: Request, error: Exception) -> JSONResponse:
    """Exception handler for :data:`DATABASE_ERRORS`."""
    reason = describe(error)
    if is_record_refusal(error):
        log.warning("query refused by the database", extra={"path": request.url.path, "error": reason})
        return JSONResponse({"detail": f"the database refused a parameter: {reason}"}, status_code=422)
    log.warning("query failed: database unavailable", extra={"path": request.url.path, "error": reason})
    return JSONResponse(
        {"detail": f"database unavailable: {reason}"}, status_code=503, headers={"Retry-After": RETRY_AFTER_SECONDS}
    )
