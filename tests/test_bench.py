"""A smoke run of the benchmark harness: it starts, loads, measures and prints its tables.

The real benchmark (``make bench``) is never part of the test suite; this only proves the
harness works, in a few seconds on SQLite (its forwarding part needs the local RabbitMQ).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.db import ON_CI

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.bench
def test_bench_quick_run_prints_its_tables():
    if shutil.which("wrk") is None:
        if ON_CI:
            pytest.fail("wrk is not installed (.ci/run installs it)")
        pytest.skip("wrk is not installed: make bench installs it")
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick"],
        cwd=ROOT,
        check=False,  # asserted below, with stderr
        capture_output=True,
        text=True,
        timeout=240,
        env={k: v for k, v in os.environ.items() if not k.startswith("MPS_")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "## Typical body" in out and "## Large body" in out and "## Projection" in out
    assert "ceiling (noop_app, uvicorn 1w)" in out and "mps-callback on sqlite (2w)" in out
    assert " ok |" in out and "LOST" not in out  # every 2xx is in the journal, every event delivered and arrived
    assert "## Forwarding" in out
    for sink in ("webhook", "rabbitmq"):  # 20/s for 2 s, 2 events each: all delivered, none dead, all arrived
        found = re.search(rf"^\| {sink} \|.*\| (\d+) / \1 ok \| 0 \| \1 \| \d+ \|$", out, re.M)
        assert found and int(found[1]) >= 70, out[-1500:]


def test_bench_material_lives_in_the_repository():
    """The ceiling, the peer, the wrk script and the body ship with the clone: nothing beside it is read."""
    from bench.__main__ import MATERIAL

    assert MATERIAL.resolve().is_relative_to(ROOT)
    for name in ("noop_app.py", "peer_flask.py", "post.lua", "workflow_finish.json.tpl"):
        assert (MATERIAL / name).is_file(), name
    for source in (ROOT / "bench").glob("*.py"):
        assert "../shared" not in source.read_text() and '"shared"' not in source.read_text(), source.name


def test_bench_webhook_receiver_counts_only_what_verifies():
    """The forwarding run's receiver: a forged signature is refused and counted, a signed event noted once."""
    import asyncio
    from datetime import UTC, datetime

    import httpx
    from standardwebhooks import Webhook

    from bench.forwarding import SECRET, Arrivals, webhook_receiver

    async def go() -> Arrivals:
        arrivals = Arrivals()
        server = await webhook_receiver(0, arrivals)
        port = server.sockets[0].getsockname()[1]
        body = b'{"id": "evt_1"}'
        now = datetime.now(UTC)
        signed = Webhook(SECRET).sign("evt_1", now, body.decode())
        headers = {"webhook-id": "evt_1", "webhook-timestamp": str(int(now.timestamp()))}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            forged = await client.post("/hooks/mps", content=body, headers={**headers, "webhook-signature": "v1,AAAA"})
            for _ in range(2):  # keep-alive: both on one connection; the second is a repeat
                good = await client.post("/hooks/mps", content=body, headers={**headers, "webhook-signature": signed})
        server.close()
        assert (forged.status_code, good.status_code) == (401, 204)
        return arrivals

    arrivals = asyncio.run(go())
    assert list(arrivals.first) == ["evt_1"] and arrivals.repeats == 1 and arrivals.rejected == 1


@pytest.mark.bench
def test_bench_scale_small_run_prints_its_tables():
    """``python -m bench.scale`` at 300 tasks on MariaDB: it builds the set, measures every read path and purges a
    month under ingest. The figures are not checked here (a tiny set says nothing); that it runs is."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--tasks", "300", "--backend", "mariadb", "--requests", "5", "--purge"],
        cwd=ROOT,
        check=False,  # asserted below, with stderr
        capture_output=True,
        text=True,
        timeout=240,
        env={k: v for k, v in os.environ.items() if not k.startswith("MPS_")}
        | {"MPS_BENCH_SCALE_DATABASE": "mps_bench_scale_smoke"},  # never the set a user built
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "q=<TaskId>" in out and "/ui/" in out and "subtitles" in out, out[-2000:]
    assert re.search(r"purge", out, re.I), out[-2000:]
