"""The loads: wrk with bench/material/post.lua (closed loop, as fast as it goes), and an
open-loop generator at a fixed rate for the projection measurement."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from mps_callback.verify.signature import sign

RESULT = re.compile(r"RESULT rps=([\d.]+) p50_ms=([\d.]+) p99_ms=([\d.]+) requests=(\d+) errors=(\d+) non2xx=(\d+)")


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    non2xx: int


def signed_env(template: Path, key: str = "key") -> dict[str, str]:
    expires = int(time.time()) + 3600
    return {
        "BODY_FILE": str(template),
        "MPS_TS": str(expires),
        "MPS_SIGN": sign(expires, key),
    }


def wrk(url: str, lua: Path, template: Path, seconds: float, connections: int = 32) -> WrkResult:
    output = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s", "-s", str(lua), url],
        capture_output=True,
        text=True,
        env={**os.environ, **signed_env(template)},
        timeout=seconds + 60,
        check=False,  # a failed run prints no RESULT line, reported below with its output
    ).stdout
    found = RESULT.search(output)
    if not found:
        raise RuntimeError(f"wrk printed no RESULT line:\n{output}")
    rps, p50, p99, requests, errors, non2xx = found.groups()
    return WrkResult(float(rps), float(p50), float(p99), int(requests), int(errors), int(non2xx))


async def open_loop(url: str, template: Path, rate: float, seconds: float, prefix: str, connections: int = 16) -> int:
    """POST ``rate`` notifications a second for ``seconds`` over keep-alive connections; return how many got 200."""
    env = signed_env(template)
    body_template = (
        (await asyncio.to_thread(template.read_text))
        .replace("__TS__", env["MPS_TS"])
        .replace("__SIGN__", env["MPS_SIGN"])
    )
    host, port_path = url.split("//", 1)[1].split(":", 1)
    port, path = port_path.split("/", 1)
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    accepted = 0

    async def connection() -> None:
        nonlocal accepted
        reader, writer = await asyncio.open_connection(host, int(port))
        while (body := await queue.get()) is not None:
            writer.write(
                b"POST /%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                % (path.encode(), host.encode(), len(body))
                + body
            )
            await writer.drain()
            status = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            accepted += status.split()[1] == b"200"
        writer.close()

    workers = [asyncio.create_task(connection()) for _ in range(connections)]
    started = time.monotonic()
    total = int(rate * seconds)
    for number in range(total):
        await asyncio.sleep(max(0.0, started + number / rate - time.monotonic()))
        queue.put_nowait(body_template.replace("__TASKID__", f"{prefix}-{number}").encode())
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return accepted
