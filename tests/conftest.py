"""Fixtures shared by every test: real databases (SQLite always, MariaDB and PostgreSQL where
reachable, always on CI). Helpers live in ``tests/support/``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.db import backends, dispose_engines, migrated
from tests.support.schema import create_old_table, never_migrated


@pytest.fixture(scope="session", autouse=True)
def _helper_engines() -> Iterator[None]:
    """The helpers' engines (one per database) are closed once, at the end."""
    yield
    dispose_engines()


@pytest.fixture(params=backends())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database of each backend, one per test."""
    yield from migrated(request.param, tmp_path)


@pytest.fixture(scope="module", params=backends())
def module_database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated, empty database of each backend, shared by a module's tests."""
    yield from migrated(request.param, tmp_path_factory.mktemp("db"))


@pytest.fixture(params=backends())
def old_script_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database but for the old Flask script's table: never migrated."""
    for url in never_migrated(request.param, tmp_path):
        create_old_table(url, request.param)
        yield url
