"""The service under test, two ways.

- :class:`InProcessService`: the app ``create_app`` builds, with its lifespan (group-commit
  journal, spool drain; background jobs such as the lag gauge on request), driven through
  httpx's ``ASGITransport`` on an event
  loop in a thread, so tests stay plain functions. It starts in milliseconds, and nothing
  is projected until the test says ``service.project()``: what a test reads is what it made
  happen. This is what the HTTP contract tests use.
- :class:`Service` (``start_service``): ``python -m mps_callback serve`` as a subprocess, on a
  real port, with its background process. For what needs a real process: SIGTERM, kill -9,
  slow clients, uvicorn's limits (header sizes, connection counts), the runtime and the CLI.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import httpx
import orjson
from anyio.from_thread import BlockingPortal, start_blocking_portal
from asgi_lifespan import LifespanManager
from starlette.types import ASGIApp

from mps_callback.app import create_app
from mps_callback.config import Settings
from mps_callback.logs import JsonFormatter
from mps_callback.project.projector import Projector
from mps_callback.runtime import BACKGROUND_JOBS, BackgroundProcess, start_jobs, stop_jobs
from mps_callback.store.migrate import upgrade

CALLBACK = "/v1/mps/callback"
Body = bytes | dict[str, Any] | Iterable[bytes]


def _content(body: Body) -> bytes | Iterable[bytes]:
    if isinstance(body, dict):
        return orjson.dumps(body)
    return body


# ---------------------------------------------------------------- in this process


class InProcessService:
    """The app in this process, as a test sees it: ``post``, ``get``, ``project``, ``logs``.

    Settings are the keyword arguments (``notify_keys="k"``, ``url_token=...``), as
    ``MPS_*`` variables would give them; the environment and any ``.env`` file are ignored.
    The database is migrated first, as ``serve`` would (``migrate=False`` for one that is away).
    ``background`` names jobs of the background process (``runtime.BACKGROUND_JOBS``) to run
    beside the app in this process, e.g. ``("projection lag",)``; projection is ``project()``'s.
    """

    def __init__(
        self,
        database_url: str,
        directory: Path,
        *,
        migrate: bool = True,
        background: tuple[str, ...] = (),
        **settings: Any,
    ) -> None:
        self.background = tuple(job for job in BACKGROUND_JOBS if job.name in background)
        if len(self.background) != len(background):
            raise ValueError(f"not all of {background} are in runtime.BACKGROUND_JOBS")
        self.database_url = database_url
        self.directory = directory
        self.spool_dir = Path(settings.pop("spool_dir", directory / "spool"))
        settings.setdefault("host", "127.0.0.1")  # as start_service: no exposure warnings unless asked for
        self.settings = Settings(_env_file=None, database_url=database_url, spool_dir=str(self.spool_dir), **settings)
        self._log = io.StringIO()
        self._stack = ExitStack()
        if migrate:
            upgrade(database_url)
        self.app = create_app(self.settings)
        self._stack.enter_context(_captured_logs(self._log))
        self._portal: BlockingPortal = self._stack.enter_context(start_blocking_portal())
        self._client: httpx.AsyncClient = self._stack.enter_context(
            self._portal.wrap_async_context_manager(self._running())
        )

    @asynccontextmanager
    async def _running(self) -> AsyncIterator[httpx.AsyncClient]:
        # CallbackDoor types its scope as a dict where the ASGI type says MutableMapping: the same at run time.
        app = cast("ASGIApp", self.app)
        async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
            transport = httpx.ASGITransport(manager.app, client=("127.0.0.1", 40000))
            jobs = start_jobs(self.background, BackgroundProcess(self.app.state.engine, self.settings, None))
            try:
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://mps-callback.test", timeout=30
                ) as client:
                    yield client
            finally:
                await stop_jobs(jobs)

    def post(self, body: Body, path: str = CALLBACK, **kwargs: Any) -> httpx.Response:
        content = _content(body)
        sent = content if isinstance(content, bytes) else _async_chunks(content)  # streamed: no Content-Length
        return self._portal.call(lambda: self._client.post(path, content=sent, **kwargs))

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self._portal.call(lambda: self._client.get(path, **kwargs))

    def project(self) -> int:
        """Project everything pending now (what serve's background process does in a loop); return how many."""

        async def drain() -> int:
            return await Projector(self.app.state.engine, self.settings.output_urls).drain()

        return self._portal.call(drain)

    def logs(self) -> str:
        """Every log line of the ``mps_callback`` loggers since start, as JSON lines (as serve writes them)."""
        return self._log.getvalue()

    def stop(self) -> None:
        self._stack.close()

    def __enter__(self) -> InProcessService:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


async def _async_chunks(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


@contextmanager
def _captured_logs(stream: io.StringIO) -> Iterator[None]:
    """JSON lines of the ``mps_callback`` loggers into ``stream``, at INFO as serve logs them."""
    logger = logging.getLogger("mps_callback")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# ---------------------------------------------------------------- a real process


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Service:
    """``mps-callback serve`` running as a subprocess, as a user runs it."""

    base_url: str
    database_url: str
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def spool_dir(self) -> Path:
        return self.log_path.parent / "spool"

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def post(self, body: Body, path: str = CALLBACK, **kwargs: Any) -> httpx.Response:
        return httpx.post(self.base_url + path, content=_content(body), timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.base_url + path, timeout=30, **kwargs)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_service(database_url: str, directory: Path, port: int | None = None, **settings: str) -> Service:
    """Run ``mps-callback serve`` as a user would, on ``port`` or a free one, and wait until it answers."""
    port = port or free_port()
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
            time.sleep(0.1)  # not listening yet: a new process takes about a second to import and bind
    service.stop()
    raise RuntimeError(f"service did not start:\n{service.logs()}")
