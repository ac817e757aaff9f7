"""An outage is not a refusal: every way a database can stop taking writes keeps the
notifications in the spool (never quarantined), ``/readyz`` says so, and once the database
is back every notification answered 200 is journaled exactly once.

Each mode is produced for real on the local servers: read-only, connections refused, a
login refused (password changed), the database dropped and re-created, SQLite on a full
file system. (A read-only SQLite file cannot be produced here: a tmpfs with the database
open refuses to be remounted read-only, and root ignores file modes.)
"""

from __future__ import annotations

import contextlib
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from mps_callback.store.migrate import upgrade
from mps_callback.store.tables import notifications
from tests.support.checks import assert_no_secret, wait_until
from tests.support.db import ON_CI, SERVER_URLS, execute, query, run, scratch_database
from tests.support.db import admin as admin_statement
from tests.support.service import Service, start_service

pytestmark = pytest.mark.faults


@dataclass
class Outage:
    """A database for the service, and how to break and mend it."""

    service_url: str  # what the service connects with
    check_url: str  # an administrator's view of the same database
    fault: Callable[[], None]
    heal: Callable[[], None]
    padding: int = 0  # bytes added to each body, where the fault only shows once the file must grow


def admin(url: str, *statements: str) -> None:
    for statement in statements:
        run(admin_statement(url, statement))


# ---------------------------------------------------------------- PostgreSQL


def _postgres(database: str) -> tuple[str, str]:
    server = make_url(SERVER_URLS["postgres"])
    return server.render_as_string(hide_password=False), server.set(database=database).render_as_string(
        hide_password=False
    )


def _terminate(server: str, database: str) -> None:
    admin(
        server,
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{database}' "
        "AND pid <> pg_backend_pid()",
    )


def postgres_read_only(url: str) -> Outage:
    database = make_url(url).database
    server, _ = _postgres(database)

    def switch(on: bool) -> None:
        admin(server, f"ALTER DATABASE {database} SET default_transaction_read_only = {'on' if on else 'off'}")
        _terminate(server, database)

    return Outage(url, url, lambda: switch(True), lambda: switch(False))


def postgres_connections_refused(url: str) -> Outage:
    database = make_url(url).database
    server, _ = _postgres(database)

    def refuse() -> None:
        admin(server, f"ALTER DATABASE {database} ALLOW_CONNECTIONS false")
        _terminate(server, database)

    return Outage(url, url, refuse, lambda: admin(server, f"ALTER DATABASE {database} ALLOW_CONNECTIONS true"))


def postgres_login_refused(url: str) -> Outage:
    """The local server trusts every password, so a changed password is produced as the same refusal
    class a wrong password gets (SQLSTATE 28000): the service's role may no longer log in."""
    database = make_url(url).database
    server, _ = _postgres(database)
    role = f"mps_{uuid.uuid4().hex[:8]}"
    admin(server, f"CREATE ROLE {role} LOGIN PASSWORD 'first-password'")
    execute(
        url,
        f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}",
        f"GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}",
    )
    service_url = make_url(url).set(username=role, password="first-password").render_as_string(hide_password=False)

    def refuse() -> None:
        admin(server, f"ALTER ROLE {role} NOLOGIN")
        _terminate(server, database)

    return Outage(service_url, url, refuse, lambda: admin(server, f"ALTER ROLE {role} LOGIN"))


def postgres_dropped(url: str) -> Outage:
    database = make_url(url).database
    server, _ = _postgres(database)

    def recreate() -> None:
        admin(server, f"CREATE DATABASE {database}")
        upgrade(url)  # the operator restores the schema (or a restarted serve migrates it)

    return Outage(url, url, lambda: admin(server, f"DROP DATABASE {database} WITH (FORCE)"), recreate)


# ---------------------------------------------------------------- MariaDB / MySQL


def _mysql_user(url: str) -> tuple[str, str]:
    """A user with rights on this database only (root would ignore read_only)."""
    user = f"mps_{uuid.uuid4().hex[:8]}"
    database = make_url(url).database
    execute(
        url, f"CREATE USER '{user}'@'%' IDENTIFIED BY 'first-password'", f"GRANT ALL ON {database}.* TO '{user}'@'%'"
    )
    return user, make_url(url).set(username=user, password="first-password").render_as_string(hide_password=False)


def _kill_connections(url: str, user: str) -> None:
    for (connection_id,) in query(url, f"SELECT id FROM information_schema.processlist WHERE user = '{user}'"):
        with contextlib.suppress(sa.exc.DBAPIError):  # gone already
            execute(url, f"KILL {connection_id}")


def mysql_read_only(url: str) -> Outage:
    user, service_url = _mysql_user(url)

    def switch(on: bool) -> None:
        execute(url, f"SET GLOBAL read_only = {'ON' if on else 'OFF'}")
        _kill_connections(url, user)

    return Outage(service_url, url, lambda: switch(True), lambda: switch(False))


def mysql_password_changed(url: str) -> Outage:
    user, service_url = _mysql_user(url)

    def change(password: str) -> None:
        execute(url, f"ALTER USER '{user}'@'%' IDENTIFIED BY '{password}'")
        _kill_connections(url, user)

    return Outage(service_url, url, lambda: change("rotated-password"), lambda: change("first-password"))


def mysql_dropped(url: str) -> Outage:
    database = make_url(url).database
    server = make_url(SERVER_URLS["mysql"]).render_as_string(hide_password=False)

    def recreate() -> None:
        admin(server, f"CREATE DATABASE {database}")
        upgrade(url)

    return Outage(url, url, lambda: admin(server, f"DROP DATABASE {database}"), recreate)


# ---------------------------------------------------------------- SQLite


def _tmpfs(directory: Path, size: str) -> None:
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)], check=False, capture_output=True
    )
    if mounted.returncode != 0:
        if ON_CI:
            pytest.fail(f"cannot mount a tmpfs: {mounted.stderr.decode()}")
        pytest.skip("mounting a tmpfs needs root")


def sqlite_disk_full(directory: Path) -> Outage:
    _tmpfs(directory, "4m")
    url = f"sqlite:///{directory / 'journal.db'}"
    upgrade(url)
    filler = directory / "filler"

    def fill() -> None:
        # dd stops with "No space left on device", a failure status, which is the point
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], check=False, capture_output=True)

    return Outage(url, url, fill, filler.unlink, padding=300_000)  # beyond the WAL's free frames


SERVER_MODES = {
    "postgres": [postgres_read_only, postgres_connections_refused, postgres_login_refused, postgres_dropped],
    "mysql": [mysql_read_only, mysql_password_changed, mysql_dropped],
}
CASES = [(backend, mode) for backend, modes in SERVER_MODES.items() for mode in modes]
CASES += [("sqlite", sqlite_disk_full)]


@pytest.fixture(params=CASES, ids=lambda case: case[1].__name__)
def outage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Outage]:
    backend, mode = request.param
    if backend == "sqlite":
        directory = tmp_path / "db"
        directory.mkdir()
        try:
            yield mode(directory)
        finally:
            subprocess.run(["umount", "-l", str(directory)], check=False, capture_output=True)  # best effort
        return
    for url in scratch_database(backend):
        upgrade(url)
        yield mode(url)


def post(service: Service, task_id: str, padding: int = 0) -> dict:
    body = {"NotificationType": "ProcessEof", "TaskId": task_id, "ProcessEofInfo": {"ErrCode": 0}}
    response = service.post({**body, "Padding": "x" * padding} if padding else body)
    assert response.status_code == 200, response.text
    return response.json()


def test_an_outage_keeps_every_notification_in_the_spool_until_the_database_is_back(outage: Outage, tmp_path: Path):
    service = start_service(outage.service_url, tmp_path)
    spool = tmp_path / "spool"
    try:
        assert not post(service, "before-the-outage").get("spooled")
        outage.fault()
        during = [post(service, f"during-{number}", outage.padding) for number in range(3)]
        assert all(answer.get("spooled") for answer in during), during
        time.sleep(2.5)  # several drain passes meet the outage
        readiness = service.get("/readyz")
        assert readiness.status_code == 503, readiness.text
        assert readiness.json()["spool_depth"] == 3 and readiness.json()["spool"]["oldest_seconds"] >= 2
        assert not (spool / "quarantine").exists() and not (spool / "held").exists()
        outage.heal()
        wait_until(lambda: service.get("/readyz").json()["spool_depth"] == 0, 30, "the spool to drain")
        wait_until(lambda: service.get("/readyz").status_code == 200, 10, "/readyz to say ready")
    finally:
        service.stop()
    stored = Counter(row.task_id for row in query(outage.check_url, sa.select(notifications.c.task_id)))
    expected = {"during-0", "during-1", "during-2"}
    assert expected <= set(stored) and max(stored.values()) == 1, stored
    assert not (spool / "quarantine").exists()
    assert_no_secret({"logs": service.logs()}, {"the role's password": "first-password"})
