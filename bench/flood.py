"""Signed notifications under a flood of large junk bodies: ``python -m bench.flood``.

The attack this measures: without ``MPS_URL_TOKEN`` anyone who can reach the callback URL
can post 16 MiB bodies that are valid JSON but no notification (deeply nested, costly to
decode, refused only once decoded). ``--flooders`` threads post such bodies in a loop
while one thread posts small signed notifications one after another; the script prints
the signed ones' p50/p99 latency and statuses, the junk answers, and the service's peak
memory (VmHWM of the web worker). Not a unit test: it takes ``--seconds`` and both cores.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson

from mps_callback.verify.signature import sign
from tests.support.service import start_service

KEY = "flood-key"
MIB = 1024 * 1024


def junk_body(size: int) -> bytes:
    """Valid JSON with an MPS EventType, unsigned, ``size`` bytes: cheap to send, dear to decode."""
    item = b'[[{"a":[1]}]]'
    head, tail = b'{"EventType":"WorkflowTask","Junk":[', b"]}"
    count = (size - len(head) - len(tail)) // (len(item) + 1)
    return head + b",".join([item] * count) + tail


def signed_body(number: int) -> bytes:
    expires = int(time.time()) + 600
    return orjson.dumps(
        {
            "NotificationType": "ProcessEof",
            "TaskId": f"flood-signed-{number}",
            "Timestamp": expires,
            "Sign": sign(expires, KEY),
        }
    )


def flood(url: str, body: bytes, stop: threading.Event, answers: Counter[str]) -> None:
    with httpx.Client(timeout=120) as client:
        while not stop.is_set():
            try:
                answers[str(client.post(url, content=body).status_code)] += 1
            except httpx.HTTPError as error:
                answers[type(error).__name__] += 1


def signed(url: str, seconds: float) -> tuple[list[float], Counter[str]]:
    latencies: list[float] = []
    answers: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    number = 0
    with httpx.Client(timeout=120) as client:
        while time.monotonic() < deadline:
            number += 1
            started = time.perf_counter()
            try:
                answers[str(client.post(url, content=signed_body(number)).status_code)] += 1
            except httpx.HTTPError as error:
                answers[type(error).__name__] += 1
            latencies.append(time.perf_counter() - started)
    return latencies, answers


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def report(label: str, latencies: list[float], answers: Counter[str]) -> None:
    print(
        f"{label}: signed n={len(latencies)} p50_ms={percentile(latencies, 0.5):.1f} "
        f"p99_ms={percentile(latencies, 0.99):.1f} max_ms={max(latencies) * 1000:.1f} "
        f"mean_ms={statistics.fmean(latencies) * 1000:.1f} answers={dict(answers)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--flooders", type=int, default=4)
    parser.add_argument("--size-mib", type=float, default=16)
    arguments = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="mps-flood-"))
    service = start_service(f"sqlite:///{directory / 'flood.db'}", directory, notify_keys=KEY)
    url = service.base_url + "/v1/mps/callback"
    try:
        report("idle (3 s)", *signed(url, 3))
        body = junk_body(int(arguments.size_mib * MIB) - 64)
        stop = threading.Event()
        junk: Counter[str] = Counter()
        threads = [threading.Thread(target=flood, args=(url, body, stop, junk)) for _ in range(arguments.flooders)]
        for thread in threads:
            thread.start()
        report(
            f"flood ({arguments.flooders} x {len(body) / MIB:.1f} MiB, {arguments.seconds:g} s)",
            *signed(url, arguments.seconds),
        )
        stop.set()
        for thread in threads:
            thread.join()
        print(f"junk answers={dict(junk)} web worker peak RSS MiB={peak_rss_mib(service.process.pid):.0f}")
    finally:
        service.stop()


if __name__ == "__main__":
    main()
