"""What the benchmark prints: the machine, and the results as a Markdown table."""

from __future__ import annotations

import asyncio
import os
import platform
import subprocess
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import sqlalchemy as sa

from bench.load import WrkResult


@dataclass
class Row:
    name: str
    result: WrkResult
    durable: tuple[int, int] | None = None  # (rows in the journal, 2xx answers)
    rss_mb: float | None = None


def markdown(rows: list[Row], ceiling: float | None) -> str:
    lines = [
        "| contender | requests/s | p50 | p99 | errors | non-2xx | vs ceiling | durable (rows / 2xx) | worker RSS |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for row in rows:
        r = row.result
        ratio = f"{r.rps / ceiling:.1%}" if ceiling else "-"
        durable = (
            "-"
            if row.durable is None
            else f"{row.durable[0]} / {row.durable[1]} " + ("ok" if row.durable[0] >= row.durable[1] else "LOST")
        )
        rss = f"{row.rss_mb:.0f} MB" if row.rss_mb else "-"
        lines.append(
            f"| {row.name} | {r.rps:,.0f} | {r.p50_ms:.1f} ms | {r.p99_ms:.1f} ms | {r.errors} | {r.non2xx} "
            f"| {ratio} | {durable} | {rss} |"
        )
    return "\n".join(lines)


def machine(mysql: str, postgres: str) -> str:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    parts = [
        "# mps-callback benchmark",
        "",
        f"- machine: {os.cpu_count()} cores ({cpu}), {platform.platform()}; wrk and every contender share it",
        f"- python {platform.python_version()}; uvicorn {version('uvicorn')} (uvloop, httptools); "
        f"sqlalchemy {version('sqlalchemy')}; asyncmy {version('asyncmy')}; asyncpg {version('asyncpg')}",
    ]
    try:
        parts.append("- " + asyncio.run(_settings(mysql, postgres)))
    except Exception as error:  # a database missing: the runs against it will say so
        parts.append(f"- database settings unavailable: {error}")
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout.splitlines()[:1]
    parts.append(
        f"- {wrk_version[0] if wrk_version else 'wrk'}; mps-callback: 2 web workers; "
        "ingest runs without projector, projection run with one; signed bodies (MPS_NOTIFY_KEYS), distinct TaskIds"
    )
    return "\n".join(parts)


async def _settings(mysql: str, postgres: str) -> str:
    from mps_callback.store.engine import create_engine

    found = []
    for url, queries in (
        (
            f"{mysql}/mysql",
            ["SELECT VERSION()", "SELECT @@innodb_flush_log_at_trx_commit", "SELECT @@sync_binlog", "SELECT @@log_bin"],
        ),
        (f"{postgres}/postgres", ["SHOW server_version", "SHOW synchronous_commit", "SHOW fsync"]),
    ):
        engine = create_engine(url, poolclass=sa.pool.NullPool)
        async with engine.connect() as connection:
            values = [str((await connection.execute(sa.text(query))).scalar_one()) for query in queries]
        await engine.dispose()
        found.append(" ".join(f"{q.split()[-1].lstrip('@')}={v}" for q, v in zip(queries, values, strict=True)))
    return "MariaDB: " + found[0] + "; PostgreSQL: " + found[1] + "; SQLite: WAL, synchronous=FULL"
