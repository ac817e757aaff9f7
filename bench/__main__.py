"""``python -m bench``: every contender on loopback, loaded by wrk, side by side.

Prints the machine, the versions and settings, then a table: requests/s, p50, p99,
errors, the ratio to the ceiling measured in the same run, and for mps-callback how many
answered notifications are durable. Then the 300 KB body run (with worker memory) and
the projection run (sustained rate, lag p50/p99, backlog), and the forwarding run
(deliveries/s and delivery lag to a webhook receiver and to RabbitMQ, bench/forwarding.py).
``--quick`` is the smoke run the test suite uses: a few seconds, SQLite only, no peer;
``--forwarding-only`` skips everything but the machine and the forwarding run;
``--projection-only`` everything but the machine and the projection run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from bench import contenders, forwarding
from bench.bodies import write_templates
from bench.load import open_loop, wrk
from bench.report import Row, machine, markdown
from mps_callback.store.engine import create_engine
from mps_callback.store.migrate import upgrade

ROOT = Path(__file__).resolve().parents[1]
MATERIAL = ROOT / "bench" / "material"  # the ceiling, the peer, post.lua and the typical body
MYSQL = os.environ.get("MPS_BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306")
POSTGRES = os.environ.get("MPS_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
PORT = 8795


def fresh_database(backend: str, name: str, directory: Path) -> str:
    """An empty, migrated database for one contender."""
    if backend == "sqlite":
        url = f"sqlite:///{directory / (name + '.db')}"
    else:
        server = MYSQL if backend == "mariadb" else POSTGRES
        admin = f"{server}/{'mysql' if backend == 'mariadb' else 'postgres'}"
        asyncio.run(_admin(admin, f"DROP DATABASE IF EXISTS {name}"))
        asyncio.run(_admin(admin, f"CREATE DATABASE {name}"))
        url = f"{server}/{name}"
    upgrade(url)
    return url


async def _admin(url: str, statement: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    async with engine.connect() as connection:
        await connection.execute(sa.text(statement))
    await engine.dispose()


async def _scalar(url: str, statement: str) -> int:
    engine = create_engine(url, poolclass=sa.pool.NullPool)
    async with engine.connect() as connection:
        value = (await connection.execute(sa.text(statement))).scalar_one()
    await engine.dispose()
    return int(value or 0)


def rss_mb(root_pid: int) -> float:
    """The largest resident set among the processes under ``root_pid`` (the web workers)."""
    pids = [root_pid] + [
        int(p)
        for p in subprocess.run(
            ["pgrep", "-P", str(root_pid)], capture_output=True, text=True, check=False
        ).stdout.split()
    ]
    largest = 0.0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    largest = max(largest, int(line.split()[1]) / 1024)
        except OSError:
            pass
    return largest


def measure(
    contender: contenders.Contender, template: Path, seconds: float, work: Path, watch_rss: bool = False
) -> Row:
    log = work / f"{contender.name.split()[0]}-{time.time_ns()}.log"
    process = contender.start(PORT, log)
    try:
        time.sleep(1)
        peak = [0.0]
        if watch_rss:
            import threading

            stop = threading.Event()

            def sample() -> None:
                while not stop.wait(0.5):
                    peak[0] = max(peak[0], rss_mb(process.pid))

            thread = threading.Thread(target=sample, daemon=True)
            thread.start()
        result = wrk(f"http://127.0.0.1:{PORT}{contender.path}", MATERIAL / "post.lua", template, seconds)
        if watch_rss:
            stop.set()
            thread.join()
        if contender.database_url:  # answers past the journal budget were spooled: let the spool drain
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and _spool_depth(PORT):
                time.sleep(0.5)
        time.sleep(0.5)
    finally:
        contenders.stop(process)
    durable = None
    if contender.database_url:
        stored = asyncio.run(_scalar(contender.database_url, "SELECT COUNT(*) FROM notifications"))
        durable = (stored, result.requests - result.non2xx - result.errors)
    return Row(contender.name, result, durable=durable, rss_mb=peak[0] or None)


def _spool_depth(port: int) -> int:
    import httpx

    return int(httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).json().get("spool_depth", 0))


def projection_run(
    url_backend: str, rate: float, seconds: float, template: Path, work: Path
) -> dict[str, float | list[int]]:
    """Sustained ingest at ``rate``/s for ``seconds`` while the projector runs; lag per notification."""
    url = fresh_database(url_backend, "mps_bench_projection", work)
    contender = contenders.ours(url_backend, url, 2, work / "spool-projection", projector=True)
    process = contender.start(PORT, work / "projection.log")
    backlog: list[int] = []
    try:

        async def run() -> int:
            async def watch() -> None:
                while True:
                    await asyncio.sleep(5)
                    backlog.append(await _scalar(url, UNPROJECTED))

            watcher = asyncio.create_task(watch())
            accepted = await open_loop(f"http://127.0.0.1:{PORT}{contender.path}", template, rate, seconds, "proj")
            watcher.cancel()
            return accepted

        accepted = asyncio.run(run())
        _wait_until_projected(url, 60, 0.5)
    finally:
        contenders.stop(process)
    lags = asyncio.run(_lags(url))
    return {
        "rate": rate,
        "seconds": seconds,
        "accepted": accepted,
        "projected": len(lags),
        "lag_p50_s": _percentile(lags, 50),
        "lag_p99_s": _percentile(lags, 99),
        "lag_max_s": max(lags or [0]),
        "backlog_samples": backlog,
    }


#: The journal rows the projector has yet to take.
UNPROJECTED = "SELECT COUNT(*) FROM notifications WHERE projected_at IS NULL"


def _wait_until_projected(url: str, seconds: float, step: float) -> None:
    """Until the projector has taken every journal row, or ``seconds`` have passed (the figures say which)."""
    deadline = time.monotonic() + seconds
    while asyncio.run(_scalar(url, UNPROJECTED)) and time.monotonic() < deadline:
        time.sleep(step)


def projection_burst(url_backend: str, count: int, template: Path, work: Path) -> dict[str, float]:
    """``count`` notifications posted as fast as the open-loop client sends them, serve's projector on:
    first received to last projected, end to end."""
    url = fresh_database(url_backend, "mps_bench_burst", work)
    contender = contenders.ours(url_backend, url, 2, work / "spool-burst", projector=True)
    process = contender.start(PORT, work / "burst.log")
    try:
        started = time.monotonic()
        accepted = asyncio.run(
            open_loop(f"http://127.0.0.1:{PORT}{contender.path}", template, 1e6, count / 1e6, "burst", 32)
        )
        sent = time.monotonic() - started
        _wait_until_projected(url, 300, 0.2)
    finally:
        contenders.stop(process)
    first, last, projected = asyncio.run(_span(url))
    seconds = (last - first).total_seconds()
    return {"accepted": accepted, "projected": projected, "sent_s": sent, "end_to_end_s": seconds}


async def _span(url: str) -> tuple[datetime, datetime, int]:
    engine = create_engine(url, poolclass=sa.pool.NullPool)
    async with engine.connect() as connection:
        first, last, projected = (
            await connection.execute(
                sa.text("SELECT MIN(received_at), MAX(projected_at), COUNT(projected_at) FROM notifications")
            )
        ).one()
    await engine.dispose()
    return _as_datetime(first), _as_datetime(last), int(projected)


def _as_datetime(value: datetime | str) -> datetime:
    """SQLite hands back text; the servers hand back datetimes."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


async def _lags(url: str) -> list[float]:
    engine = create_engine(url, poolclass=sa.pool.NullPool)
    async with engine.connect() as connection:
        rows = await connection.execute(sa.text("SELECT received_at, projected_at FROM notifications"))
        lags = []
        for received, projected in rows:
            if projected is not None:
                lags.append((_as_datetime(projected) - _as_datetime(received)).total_seconds())
    await engine.dispose()
    return lags


def _percentile(values: list[float], percent: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * percent / 100))]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--seconds", type=float, default=10, help="each wrk run")
    parser.add_argument("--projection-seconds", type=float, default=60)
    parser.add_argument("--projection-rate", type=float, default=1000)
    parser.add_argument("--projection-burst", type=int, default=20000, help="notifications in the burst run (0: none)")
    parser.add_argument("--forwarding-seconds", type=float, default=20)
    parser.add_argument(
        "--forwarding-rate",
        type=float,
        default=500,
        help="notifications/s (2 events each: 1,000 deliveries/s per sink)",
    )
    parser.add_argument("--forwarding-backend", choices=["sqlite", "mariadb", "postgresql"], default="mariadb")
    parser.add_argument("--forwarding-only", action="store_true", help="only the machine and the forwarding run")
    parser.add_argument("--projection-only", action="store_true", help="only the machine and the projection run")
    parser.add_argument("--quick", action="store_true", help="smoke run: a few seconds, SQLite only, no peer")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mps-bench-"))
    templates = write_templates(work, MATERIAL / "workflow_finish.json.tpl")
    print(machine(MYSQL, POSTGRES), flush=True)
    if args.projection_only:
        projection(args, templates, work)
        print(f"\nwork directory (logs): {work}; python {platform.python_version()}; {sys.executable}")
        return
    if not args.forwarding_only:
        ingest_and_projection(args, templates, work)
    rate = 20 if args.quick else args.forwarding_rate
    duration = 2 if args.quick else args.forwarding_seconds
    backend = "sqlite" if args.quick else args.forwarding_backend
    url = fresh_database(backend, "mps_bench_forwarding", work)
    accepted, sinks = forwarding.forwarding_run(backend, url, PORT, rate, duration, templates["typical"], work)
    print(
        f"\n## Forwarding while ingesting {rate:g}/s for {duration:g} s ({backend}, typical body, "
        f"{accepted} accepted; events {', '.join(forwarding.EVENTS)}: {rate * len(forwarding.EVENTS):g}/s offered "
        "per sink)\n"
    )
    print(forwarding.markdown(sinks, rate))
    print(f"\nwork directory (logs): {work}; python {platform.python_version()}; {sys.executable}")


def ingest_and_projection(args: argparse.Namespace, templates: dict[str, Path], work: Path) -> None:
    seconds = 2 if args.quick else args.seconds
    backends = ["sqlite"] if args.quick else ["mariadb", "postgresql", "sqlite"]

    rows = [
        measure(contenders.ceiling(MATERIAL, 1), templates["typical"], seconds, work),
        measure(contenders.ceiling(MATERIAL, 2), templates["typical"], seconds, work),
    ]
    if not args.quick:
        peer_db = "mps_bench_peer"
        asyncio.run(_admin(f"{MYSQL}/mysql", f"DROP DATABASE IF EXISTS {peer_db}"))
        asyncio.run(_admin(f"{MYSQL}/mysql", f"CREATE DATABASE {peer_db}"))
        rows += [
            measure(contenders.peer(MATERIAL, server, MYSQL, peer_db), templates["typical"], seconds, work)
            for server in ("werkzeug", "gunicorn")
        ]
    for backend in backends:
        url = fresh_database(backend, "mps_bench_typical", work)
        rows.append(
            measure(contenders.ours(backend, url, 2, work / f"spool-{backend}"), templates["typical"], seconds, work)
        )
    print("\n## Typical body (5 KB WorkflowTask), wrk -t2 -c32: journal ingest (projection measured below)\n")
    ceiling_rps = max(rows[0].result.rps, rows[1].result.rps)  # the better of the two ceilings: the harder ratio
    print(markdown(rows, ceiling=ceiling_rps))

    large_rows = []
    for backend in backends:
        url = fresh_database(backend, "mps_bench_large", work)
        large_rows.append(
            measure(
                contenders.ours(backend, url, 2, work / f"spool-large-{backend}"),
                templates["large"],
                seconds,
                work,
                watch_rss=True,
            )
        )
    print("\n## Large body (300 KB ScheduleTask with word-level ASR), wrk -t2 -c32: journal ingest\n")
    print(markdown(large_rows, ceiling=None))
    projection(args, templates, work)


def projection(args: argparse.Namespace, templates: dict[str, Path], work: Path) -> None:
    """The projection run: a fixed rate of typical notifications while serve's projector keeps up (or not)."""
    rate = 100 if args.quick else args.projection_rate
    duration = 3 if args.quick else args.projection_seconds
    backend = "sqlite" if args.quick else "mariadb"
    result = projection_run(backend, rate, duration, templates["typical"], work)
    print(f"\n## Projection while ingesting {rate:g}/s for {duration:g} s ({backend}, typical body)\n")
    print("| accepted | projected | lag p50 | lag p99 | lag max | backlog every 5 s |\n|---|---|---|---|---|---|")
    print(
        f"| {result['accepted']} | {result['projected']} | {result['lag_p50_s']:.3f} s | {result['lag_p99_s']:.3f} s "
        f"| {result['lag_max_s']:.3f} s | {result['backlog_samples']} |",
        flush=True,
    )
    count = 200 if args.quick else args.projection_burst
    if not count:
        return
    burst = projection_burst(backend, count, templates["typical"], work)
    print(f"\n## Projection of a burst of {count} ({backend}, typical body, sent as fast as the client goes)\n")
    print("| accepted | projected | sent in | first received to last projected | end to end |\n|---|---|---|---|---|")
    print(
        f"| {burst['accepted']} | {burst['projected']} | {burst['sent_s']:.1f} s | {burst['end_to_end_s']:.1f} s "
        f"| {burst['projected'] / max(burst['end_to_end_s'], 1e-9):.0f}/s |",
        flush=True,
    )


if __name__ == "__main__":
    main()
