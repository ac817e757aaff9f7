"""Which database errors are about the record and which about the database: the drivers' codes.

The fault tests (tests/faults/test_outage_modes.py) produce the common outages for real; this
table covers the codes that cannot be produced here (a full disk on MariaDB, a statement
timeout) so that none of them is ever taken for a record's fault.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from mps_callback.store.errors import is_database_state, is_record_refusal


class MysqlError(Exception):
    """What asyncmy raises: (code, message), and a sqlstate."""

    def __init__(self, code: int) -> None:
        super().__init__(code, "message")
        self.sqlstate = "HY000"


class PostgresError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__("message")
        self.sqlstate = sqlstate


def wrapped(original: Exception) -> sa.exc.DBAPIError:
    return sa.exc.DBAPIError("INSERT ...", {}, original)


DATABASE = [
    MysqlError(code) for code in (3, 1021, 1026, 1030, 1040, 1045, 1049, 1054, 1114, 1146, 1205, 1290, 1969, 3024)
]
DATABASE += [PostgresError(state) for state in ("08006", "25006", "28P01", "3D000", "42P01", "42703", "53100", "57P01")]
RECORD = [MysqlError(code) for code in (1048, 1062, 1366, 1406, 1644, 3140)]
RECORD += [PostgresError(state) for state in ("22001", "22P05", "23505", "54000", "P0001")]


@pytest.mark.parametrize("original", DATABASE, ids=repr)
def test_errors_about_the_database_never_blame_the_record(original: Exception):
    assert is_database_state(wrapped(original)) and not is_record_refusal(wrapped(original))


@pytest.mark.parametrize("original", RECORD, ids=repr)
def test_the_databases_verdict_on_the_data_blames_the_record(original: Exception):
    assert is_record_refusal(wrapped(original)) and not is_database_state(wrapped(original))


@pytest.mark.parametrize(
    "original", [MysqlError(2006), MysqlError(2013), PostgresError("XX000"), RuntimeError("reset")], ids=repr
)
def test_a_dropped_connection_is_neither_until_a_probe_decides(original: Exception):
    error = wrapped(original) if not isinstance(original, RuntimeError) else original
    assert not is_record_refusal(error) and not is_database_state(error)
