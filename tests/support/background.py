"""The background process (``mps-callback background``) run as a real process beside a test."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson


def start_command(url: str, log: Path, command: str = "background", **settings: str) -> subprocess.Popen[bytes]:
    """``mps-callback <command>`` started on ``url`` with ``MPS_<SETTING>`` variables, appending to ``log``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MPS_")}
    env |= {"MPS_DATABASE_URL": url} | {f"MPS_{name.upper()}": value for name, value in settings.items()}
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "mps_callback", command], env=env, stdout=output, stderr=subprocess.STDOUT
        )


@contextmanager
def background_process(url: str, log: Path, command: str = "background", **settings: str) -> Iterator[None]:
    """``mps-callback background`` (or another command) running on ``url``, logging to ``log``."""
    process = start_command(url, log, command, **settings)
    try:
        yield
    finally:
        process.terminate()
        assert process.wait(10) == 0, log.read_text()


def jobs_started(log: Path) -> list[str]:
    lines = [orjson.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return next(line["jobs"] for line in lines if line["message"] == "background process runs")
