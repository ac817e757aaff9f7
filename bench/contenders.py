"""How to start each contender on loopback, and tell when it is ready."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx


@dataclass
class Contender:
    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    path: str = "/pyapi/mps/callback"
    database_url: str | None = None  # ours: where to count what is durable

    def start(self, port: int, log: Path) -> subprocess.Popen[bytes]:
        env = {**os.environ, **self.env}
        command = [part.replace("{port}", str(port)) for part in self.command]
        env = {key: value.replace("{port}", str(port)) for key, value in env.items()}
        process = subprocess.Popen(
            command, env=env, cwd=self.cwd, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {log.read_text()[-2000:]}")
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5)
                return process
            except httpx.HTTPError:
                time.sleep(0.2)
        stop(process)
        raise RuntimeError(f"{self.name} did not start: {log.read_text()[-2000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)


def ceiling(material: Path, workers: int) -> Contender:
    return Contender(
        f"ceiling (noop_app, uvicorn {workers}w)",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "noop_app:app",
            "--port",
            "{port}",
            "--no-access-log",
            "--log-level",
            "warning",
            "--workers",
            str(workers),
        ],
        cwd=material,
    )


def peer(material: Path, server: str, mysql_url: str, database: str) -> Contender:
    env = {"BASE_DB_NAME": database, "BASE_PORT": "{port}"}
    if server == "werkzeug":
        return Contender("peer (Flask, Werkzeug threaded)", [sys.executable, "peer_flask.py"], env, material)
    return Contender(
        "peer (Flask, gunicorn -w 4)",
        [sys.executable, "-m", "gunicorn", "-w", "4", "-b", "127.0.0.1:{port}", "peer_flask:app"],
        env,
        material,
    )


def ours(backend: str, database_url: str, workers: int, spool: Path, projector: bool = False) -> Contender:
    """mps-callback; the ingest runs leave projection to a separate run (MPS_SERVE_BACKGROUND=false)."""
    env = {
        "MPS_DATABASE_URL": database_url,
        "MPS_NOTIFY_KEYS": "key",
        "MPS_HOST": "127.0.0.1",
        "MPS_PORT": "{port}",
        "MPS_WEB_WORKERS": str(workers),
        "MPS_LOG_LEVEL": "WARNING",
        "MPS_SPOOL_DIR": str(spool),
        "MPS_SERVE_BACKGROUND": str(projector).lower(),
    }
    return Contender(
        f"mps-callback on {backend} ({workers}w)",
        [sys.executable, "-m", "mps_callback", "serve"],
        env,
        path="/pyapi/mps/callback",
        database_url=database_url,
    )
