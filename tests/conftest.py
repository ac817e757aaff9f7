"""Shared test harness: real databases (SQLite always, MariaDB and PostgreSQL where reachable,
always on CI), the real service started as a subprocess, and the fixture bodies."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from mps_callback.store.engine import create_engine
from mps_callback.store.migrate import upgrade

FIXTURES = Path(__file__).parent / "fixtures"
SERVER_URLS = {
    "mysql": os.environ.get("MPS_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test"),
    "postgres": os.environ.get("MPS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
}
ON_CI = os.environ.get("CI", "").lower() == "true"


def fixture_files(kind: str) -> list[Path]:
    return sorted((FIXTURES / kind).glob("*.json"))


def load_fixture(relative: str | Path) -> dict[str, Any]:
    return orjson.loads((FIXTURES / relative).read_bytes())


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


# ---------------------------------------------------------------- databases


async def _admin(url: str, statement: str) -> None:
    engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(sa.text(statement))
    finally:
        await engine.dispose()


def _scratch_database(backend: str) -> Iterator[str]:
    """A fresh, empty database on the ``backend`` server, dropped afterwards."""
    server_url = make_url(SERVER_URLS[backend])
    name = f"mps_test_{uuid.uuid4().hex[:10]}"
    try:
        run(_admin(server_url.render_as_string(hide_password=False), f"CREATE DATABASE {name}"))
    except (OSError, sa.exc.OperationalError, sa.exc.InterfaceError) as error:
        if ON_CI:
            pytest.fail(f"{backend} unreachable on CI ({SERVER_URLS[backend]}): {error}")
        pytest.skip(f"{backend} unreachable: {error}")
    yield server_url.set(database=name).render_as_string(hide_password=False)
    # FORCE: a service a test killed with -9 may still be closing its sessions.
    force = " WITH (FORCE)" if backend == "postgres" else ""
    run(_admin(server_url.render_as_string(hide_password=False), f"DROP DATABASE {name}{force}"))


@pytest.fixture(params=["sqlite", "mysql", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database of each backend, one per test."""
    yield from _migrated(request.param, tmp_path)


@pytest.fixture(scope="module", params=["sqlite", "mysql", "postgres"])
def module_database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated, empty database of each backend, shared by a module's tests."""
    yield from _migrated(request.param, tmp_path_factory.mktemp("db"))


def _migrated(backend: str, directory: Path) -> Iterator[str]:
    if backend == "sqlite":
        url = f"sqlite:///{directory / 'journal.db'}"
        upgrade(url)
        yield url
        return
    for url in _scratch_database(backend):
        upgrade(url)
        yield url


async def _fetch(url: str, statement: Any) -> list[Any]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return list(await connection.execute(statement))
    finally:
        await engine.dispose()


def query(url: str, statement: Any) -> list[Any]:
    """Rows of ``statement`` (SQLAlchemy Core or text) run against ``url``."""
    if isinstance(statement, str):
        statement = sa.text(statement)
    return run(_fetch(url, statement))


def execute(url: str, *statements: str) -> None:
    async def go() -> None:
        engine = create_engine(url, poolclass=NullPool)
        try:
            async with engine.begin() as connection:
                for statement in statements:
                    await connection.execute(sa.text(statement))
        finally:
            await engine.dispose()

    run(go())


# ---------------------------------------------------------------- the service


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Service:
    base_url: str
    database_url: str
    log_path: Path
    process: subprocess.Popen[bytes]

    def post(self, body: bytes | dict[str, Any], path: str = "/v1/mps/callback", **kwargs: Any) -> httpx.Response:
        content = orjson.dumps(body) if isinstance(body, dict) else body
        return httpx.post(self.base_url + path, content=content, timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.base_url + path, timeout=30, **kwargs)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_service(database_url: str, directory: Path, **settings: str) -> Service:
    """Run ``mps-callback serve`` as a user would, on a free port, and wait until it answers."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("MPS_")}
    env.update(
        {
            "MPS_DATABASE_URL": database_url,
            "MPS_HOST": "127.0.0.1",
            "MPS_PORT": str(port),
            "MPS_SPOOL_DIR": str(directory / "spool"),
        }
    )
    env.update({f"MPS_{name.upper()}": value for name, value in settings.items()})
    (directory / "spool").mkdir(exist_ok=True)
    log_path = directory / f"service-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "mps_callback", "serve"],
            env=env,
            cwd=directory,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    service = Service(f"http://127.0.0.1:{port}", database_url, log_path, process)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"service exited with {process.returncode}:\n{service.logs()}")
        try:
            if httpx.get(service.base_url + "/healthz", timeout=1).status_code == 200:
                return service
        except httpx.HTTPError:
            time.sleep(0.1)
    service.stop()
    raise RuntimeError(f"service did not start:\n{service.logs()}")
