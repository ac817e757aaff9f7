"""No secret reaches anything the service writes: database rows, logs, metrics, spool, quarantine.

The run exercises the paths where secrets leak in practice: bodies carrying S3 keys,
credentials in headers and in the URL, a database password in MPS_DATABASE_URL, and a
database outage (error messages, spooled records), on MariaDB and PostgreSQL: SQLite has
no password and no connection to cut (its keys and tokens are covered by
intake/test_door_security.py and intake/test_service.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from mps_callback.send import stamp
from mps_callback.store.migrate import upgrade
from tests.support.bodies import SECRET_ID, SECRET_KEY, load_fixture
from tests.support.checks import assert_no_secret, wait_until
from tests.support.db import ON_CI, SERVER_URLS, admin, backends, forget_engine, query, run
from tests.support.proxy import CuttableProxy
from tests.support.service import InProcessService

SECRETS = {
    "notify key": "notify-key-7f3a9c",
    "url token": "url-token-5d2e8b",
    "api token": "api-token-9c4f1a",
    "database password": "db-pass-3b7e6d",
    "S3SecretId": SECRET_ID,
    "S3SecretKey": SECRET_KEY,
    "authorization header": "header-bearer-1e9f",
    "cookie": "cookie-value-6a2c",
}


#: How each server makes a database reachable only with a password (run one at a time, outside a transaction).
PASSWORD_DATABASE = {
    "mysql": [
        "CREATE DATABASE {name}",
        "CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'",
        "GRANT ALL ON {name}.* TO '{user}'@'%'",
    ],
    "postgres": ["CREATE ROLE {user} LOGIN PASSWORD '{password}'", "CREATE DATABASE {name} OWNER {user}"],
}
DROP_PASSWORD_DATABASE = {
    "mysql": ["DROP DATABASE {name}", "DROP USER '{user}'@'%'"],
    "postgres": ["DROP DATABASE {name} WITH (FORCE)", "DROP ROLE {user}"],
}


@pytest.fixture(params=[backend for backend in backends() if backend != "sqlite"])
def password_database(request: pytest.FixtureRequest) -> Iterator[str]:
    """A database reachable only with a password, so the password is in MPS_DATABASE_URL."""
    backend = request.param
    server = make_url(SERVER_URLS[backend])
    admin_url = server.render_as_string(hide_password=False)
    names = {"name": f"mps_sec_{uuid.uuid4().hex[:8]}", "user": f"mps_{uuid.uuid4().hex[:8]}"}
    names["password"] = SECRETS["database password"]
    try:
        for statement in PASSWORD_DATABASE[backend]:
            run(admin(admin_url, statement.format(**names)))
    except Exception as error:
        if ON_CI:
            pytest.fail(f"{backend} unreachable on CI: {error}")
        pytest.skip(f"{backend} unreachable: {error}")
    url = server.set(database=names["name"], username=names["user"], password=names["password"])
    yield url.render_as_string(hide_password=False)
    forget_engine(url.render_as_string(hide_password=False))
    for statement in DROP_PASSWORD_DATABASE[backend]:
        run(admin(admin_url, statement.format(**names)))


def test_no_secret_in_rows_logs_metrics_or_spool(password_database: str, tmp_path: Path):
    upgrade(password_database)
    target = make_url(password_database)
    proxy = CuttableProxy("127.0.0.1", target.port)
    via_proxy = target.set(port=proxy.port).render_as_string(hide_password=False)
    service = InProcessService(
        via_proxy,
        tmp_path,
        notify_keys=SECRETS["notify key"],
        url_token=SECRETS["url token"],
        api_token=SECRETS["api token"],
    )
    headers = {"Authorization": f"Bearer {SECRETS['authorization header']}", "Cookie": f"s={SECRETS['cookie']}"}
    callback = f"/v1/mps/callback?token={SECRETS['url token']}"
    bodies = [
        load_fixture("vod/WorkflowTask-MediaProcess-TranscodeTask.json"),
        load_fixture("vod/WorkflowTask-AiAnalysis-DeLogoTask.json"),
    ]
    try:
        for body in bodies:
            assert service.post(stamp(body, SECRETS["notify key"]), path=callback, headers=headers).status_code == 200
        proxy.cut()  # an outage: errors get logged, notifications spooled
        spooled = stamp(load_fixture("vod/WorkflowTask-SmartEraseTaskResult.json"), SECRETS["notify key"])
        answer = service.post(spooled, path=callback, headers=headers).json()
        assert answer.get("spooled") is True
        spool_text = b"".join(p.read_bytes() for p in service.spool_dir.glob("*.spool")).decode()
        service.post(b"garbage " + SECRETS["notify key"].encode(), path=callback)  # a bad body quoting a secret
        service.post(stamp(bodies[0], "wrong-key"), path=callback)
        proxy.restore()
        wait_until(lambda: service.get("/readyz").json()["spool_depth"] == 0, 20, "the spool to drain")
        service.project()
        api = {"Authorization": f"Bearer {SECRETS['api token']}"}
        task_id = bodies[1]["WorkflowTaskEvent"]["TaskId"]
        api_text = service.get(f"/v1/tasks/{task_id}", headers=api).text
        metrics_text = service.get("/metrics").text
    finally:
        service.stop()
        proxy.close()
    tables = ("notifications", "tasks", "subtasks", "outputs", "segments")
    rows = " ".join(
        str(tuple(r)) for table in tables for r in query(password_database, sa.text(f"SELECT * FROM {table}"))
    )
    assert "[redacted]" in rows and "[redacted]" in spool_text
    written = {
        "database rows": rows,
        "logs": service.logs(),
        "metrics": metrics_text,
        "spool": spool_text,
        "query API": api_text,
    }
    assert_no_secret(written, SECRETS)
