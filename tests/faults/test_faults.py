"""Real faults, no mocks: the database cut mid-load, kill -9 mid-load, a full spool disk.

Every test counts what the clients were told and what the database holds afterwards:
nothing answered 200 may be missing, nothing may be stored twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from mps_callback.store.tables import notifications
from tests.support.checks import wait_until
from tests.support.db import ON_CI, backends, query
from tests.support.proxy import CuttableProxy, run_load
from tests.support.service import start_service

pytestmark = pytest.mark.faults


@pytest.fixture(params=["mysql", "postgres"])
def server_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    from tests.support.db import migrated

    yield from migrated(request.param, tmp_path)


@pytest.fixture(params=backends())
def any_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    from tests.support.db import migrated

    yield from migrated(request.param, tmp_path)


def through(proxy: CuttableProxy, url: str) -> str:
    return make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


def stored_task_ids(url: str) -> Counter[str]:
    return Counter(row.task_id for row in query(url, sa.select(notifications.c.task_id)))


def report(name: str, load, stored: Counter[str]) -> None:
    statuses = Counter(load.answers.values())
    print(
        f"\n{name}: sent={len(load.answers)} answers={dict(statuses)} spooled={len(load.spooled)} "
        f"stored={sum(stored.values())} distinct={len(stored)}"
    )


def test_database_cut_for_ten_seconds_mid_load(server_database: str, tmp_path: Path):
    proxy = CuttableProxy(make_url(server_database).host or "127.0.0.1", make_url(server_database).port)
    service = start_service(through(proxy, server_database), tmp_path)
    try:
        load = run_load(service.base_url, 16, "cut", events=[(3, proxy.cut), (13, proxy.restore)])
        wait_until(lambda: service.get("/readyz").json().get("spool_depth") == 0, 30, "the spool to drain")
    finally:
        service.stop()
        proxy.close()
    stored = stored_task_ids(server_database)
    report("database cut 10 s", load, stored)
    accepted = load.with_status(200)
    assert accepted and load.spooled, "the cut must have happened during the load"
    assert accepted <= set(stored), f"answered 200 but missing: {sorted(accepted - set(stored))[:5]}"
    assert max(stored.values()) == 1
    assert set(load.answers.values()) <= {200}, Counter(load.answers.values())


def test_kill_9_mid_load_loses_nothing_answered(any_database: str, tmp_path: Path):
    server_database = any_database
    service = start_service(server_database, tmp_path)
    load = run_load(service.base_url, 5, "kill", events=[(2.5, lambda: service.process.send_signal(signal.SIGKILL))])
    service.process.wait(10)
    restarted = start_service(server_database, tmp_path)  # same database, same spool
    try:
        wait_until(
            lambda: query(server_database, "SELECT COUNT(*) FROM notifications WHERE projected_at IS NULL")[0][0] == 0,
            60,
            "the restarted service to project what the killed one journaled",
        )
    except AssertionError as timeout:
        raise AssertionError(f"{timeout}\n{unprojected(server_database)}\n{restarted.logs()[-6000:]}") from None
    finally:
        restarted.stop()
    stored = stored_task_ids(server_database)
    report("kill -9", load, stored)
    accepted = load.with_status(200)
    assert accepted and load.with_status(0), "the kill must have happened during the load"
    assert accepted <= set(stored)
    assert max(stored.values()) == 1
    projected = query(server_database, "SELECT COUNT(*) FROM tasks")[0][0]
    assert projected == len(stored)


def unprojected(url: str) -> str:
    """What a projection that never finished left: the rows still waiting and why (a failure's error, its back-off)."""
    rows = query(
        url,
        sa.select(
            notifications.c.id,
            notifications.c.projection_attempts,
            notifications.c.next_attempt_at,
            notifications.c.projection_error,
        )
        .where(notifications.c.projected_at.is_(None))
        .limit(5),
    )
    return "still unprojected (first 5): " + "; ".join(str(tuple(row)) for row in rows)


def test_full_spool_disk_gives_503_never_a_200_without_storage(server_database: str, tmp_path: Path):
    spool_dir = tmp_path / "tiny"
    spool_dir.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(spool_dir)], check=False, capture_output=True
    )
    if mounted.returncode != 0:
        if ON_CI:
            pytest.fail(f"cannot mount a tmpfs for the full-disk test: {mounted.stderr.decode()}")
        pytest.skip("mounting a tmpfs needs root")
    proxy = CuttableProxy(make_url(server_database).host or "127.0.0.1", make_url(server_database).port)
    service = start_service(through(proxy, server_database), tmp_path, spool_dir=str(spool_dir))
    try:
        proxy.cut()
        load = run_load(service.base_url, 4, "full", threads=4)
        spooled_records = sum(int(p.name.rsplit("-", 1)[1].split(".")[0]) for p in spool_dir.glob("*.spool"))
        proxy.restore()
        wait_until(lambda: service.get("/readyz").json().get("spool_depth") == 0, 30, "the spool to drain")
    finally:
        service.stop()
        proxy.close()
        subprocess.run(["umount", str(spool_dir)], check=False)
    stored = stored_task_ids(server_database)
    report("full spool disk", load, stored)
    accepted, refused = load.with_status(200), load.with_status(503)
    assert accepted and refused, "the spool must have filled up during the load"
    assert len(accepted) == len(load.spooled) == spooled_records
    assert accepted <= set(stored) and not (refused & set(stored))
    assert os.path.ismount(spool_dir) is False
