"""The process model of ``serve``: what it starts, what watches over it, and how others can tell.

``serve`` is one main process. Its main thread runs uvicorn (the web workers); a
supervisor thread beside it first waits for the database and applies the migrations,
then keeps one projector process alive (``python -m mps_callback worker``), restarting it
with back-off whenever it dies. The web workers take notifications from the first second,
database or not: what the database does not take goes to the spool, and the spool is
drained once the migrations are in.

The processes talk through a runtime directory that ``serve`` creates and names in
``MPS_RUNTIME_DIR`` (not a user setting): the projector touches a heartbeat file there
every second, and ``serve`` leaves markers for "the schema is current" and "a projector is
supervised here". :func:`projector_status` reads them for ``/readyz``.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Literal, TypeVar

if TYPE_CHECKING:
    from mps_callback.config import Settings

T = TypeVar("T")

log = logging.getLogger(__name__)

#: Names the runtime directory in the environment of serve's web workers and projector.
RUNTIME_DIR_ENV = "MPS_RUNTIME_DIR"
#: Set only in the projector's environment: the pid of the serve process that started it.
PARENT_PID_ENV = "MPS_PROJECTOR_PARENT_PID"
HEARTBEAT_FILE = "projector.heartbeat"
SUPERVISED_FILE = "projector.supervised"
DIED_FILE = "projector.died"  # a projector has died since serve started: no heartbeat means down
SCHEMA_READY_FILE = "schema.ready"
HEARTBEAT_SECONDS = 1.0
#: A heartbeat older than this means the projector is hung (or gone); a batch of large
#: notifications can hold its event loop for a few seconds, so this is not 2 x the beat.
HEARTBEAT_STALE_SECONDS = 10.0
#: How long after serve starts a projector without a heartbeat yet counts as starting, not down.
STARTING_SECONDS = 30.0
#: How long one reachability probe may take before the database counts as unreachable.
PROBE_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 30.0
PR_SET_PDEATHSIG = 1

ProjectorState = Literal["running", "starting", "down", "external"]


# ---------------------------------------------------------------- the runtime directory


def runtime_dir() -> Path | None:
    """The directory serve created for this instance, or None outside serve."""
    named = os.environ.get(RUNTIME_DIR_ENV)
    return Path(named) if named else None


def create_runtime_dir(supervise_projector: bool) -> Path:
    """A fresh directory for this serve, named in the environment its children inherit.

    Always fresh, never taken from the user: a heartbeat left by an earlier serve must not
    make a dead projector look alive.
    """
    directory = Path(tempfile.mkdtemp(prefix="mps-callback-run-"))
    os.environ[RUNTIME_DIR_ENV] = str(directory)
    if supervise_projector:
        (directory / SUPERVISED_FILE).touch()
    return directory


def mark_schema_ready(directory: Path) -> None:
    (directory / SCHEMA_READY_FILE).touch()


def schema_ready(directory: Path | None = None) -> bool:
    """May the web workers drain the spool yet?

    Under serve, only once the migrations are in: a record drained into a database that
    answers but has no tables yet would be refused. Outside serve (no runtime directory)
    the schema is someone else's business, as before.
    """
    directory = directory or runtime_dir()
    return directory is None or (directory / SCHEMA_READY_FILE).exists()


# ---------------------------------------------------------------- heartbeat and status


def heartbeat_age(directory: Path, now: float | None = None) -> float | None:
    """Seconds since the projector last touched its heartbeat; None when there is none."""
    try:
        touched = (directory / HEARTBEAT_FILE).stat().st_mtime
    except FileNotFoundError:
        return None
    return max(0.0, (time.time() if now is None else now) - touched)


def projector_status(directory: Path | None = None) -> dict[str, str | float | None]:
    """Is serve's projector alive, for a web worker's ``/readyz``.

    ``external``: this serve runs no projector (``MPS_SERVE_PROJECTOR=false``, or not under
    serve at all); ``running``: the heartbeat is fresh; ``starting``: no heartbeat yet, serve
    started moments ago; ``down``: dead, hung, restarting, or not started because the
    database has not been migrated.
    """
    directory = directory or runtime_dir()
    supervised = directory / SUPERVISED_FILE if directory is not None else None
    if supervised is None or not supervised.exists():
        return {"projector": "external", "heartbeat_age_seconds": None}
    age = heartbeat_age(directory)
    state: ProjectorState = "running" if age is not None and age <= HEARTBEAT_STALE_SECONDS else "down"
    first = not (directory / DIED_FILE).exists()
    if age is None and first and time.time() - supervised.stat().st_mtime < STARTING_SECONDS:
        state = "starting"
    return {"projector": state, "heartbeat_age_seconds": None if age is None else round(age, 3)}


async def beat(directory: Path, seconds: float = HEARTBEAT_SECONDS) -> None:
    """Touch the heartbeat file every ``seconds``, forever.

    Its own task, so it says "this process and its event loop are alive" whether or not
    there is anything to project; a projection pass that blocks the loop stops it too.
    """
    path = directory / HEARTBEAT_FILE
    while True:
        try:
            path.touch()
        except OSError as error:  # the directory went away with serve: nothing to tell
            log.debug("heartbeat not written", extra={"error": str(error)})
        await asyncio.sleep(seconds)


async def with_heartbeat(directory: Path | None, work: Awaitable[T]) -> T:
    """Await ``work`` while :func:`beat` runs beside it (no heartbeat outside serve)."""
    if directory is None:
        return await work
    heart = asyncio.create_task(beat(directory))
    try:
        return await work
    finally:
        heart.cancel()
        await asyncio.gather(heart, return_exceptions=True)


# ---------------------------------------------------------------- the projector process


def start_projector(parent_pid: int) -> subprocess.Popen[bytes]:
    """The projector beside the web workers, in its own process.

    Parsing a batch of notifications is CPU work; in a web worker's event loop it would
    hold up every request. The child lowers its own priority and arranges to die with serve
    (:func:`attach_to_serve`), rather than a ``preexec_fn`` doing it between fork and exec,
    which is unsafe in a process that runs threads (serve does).
    """
    env = {**os.environ, PARENT_PID_ENV: str(parent_pid)}
    return subprocess.Popen([sys.executable, "-m", "mps_callback", "worker"], env=env)


def attach_to_serve() -> Path | None:
    """In a projector serve started: nice it, tie its life to serve's; return the runtime dir.

    PR_SET_PDEATHSIG sends SIGTERM when the thread that started this process ends (serve's
    supervisor thread), even after a kill -9 of serve. If serve died before the prctl, the
    parent pid has already changed: leave at once. Outside serve, nothing changes.
    """
    parent = os.environ.pop(PARENT_PID_ENV, None)
    if parent is None:
        return None
    os.nice(10)
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(parent):
        sys.exit(0)
    return runtime_dir()


@dataclass
class Backoff:
    """1 s, 2 s, 4 s ... up to ``longest``; back to ``first`` after a run of ``settled`` seconds.

    A projector that crashes at start (a bad deploy, a database refusing it) must not spin;
    one that ran for an hour and then died deserves a quick restart.
    """

    first: float = 1.0
    longest: float = 30.0
    settled: float = 60.0
    _next: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self._next = self.first

    def delay(self, ran_for: float = 0.0) -> float:
        if ran_for >= self.settled:
            self._next = self.first
        delay, self._next = self._next, min(self._next * 2, self.longest)
        return delay


def describe_exit(code: int) -> dict[str, int | str]:
    """``{"signal": "SIGKILL"}`` or ``{"exit_code": 1}``, for the log line about a death."""
    if code < 0:
        try:
            return {"signal": signal.Signals(-code).name}
        except ValueError:
            return {"signal": str(-code)}
    return {"exit_code": code}


# ---------------------------------------------------------------- the database


class DatabaseUnreachable(Exception):
    """No connection to the database: wait and try again (the notifications go to the spool)."""


async def _select_one(database_url: str) -> None:
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    from mps_callback.store.engine import create_engine

    engine = create_engine(database_url, poolclass=NullPool)
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            async with engine.connect() as connection:
                await connection.execute(sa.text("SELECT 1"))
    finally:
        await engine.dispose()


def probe(database_url: str) -> None:
    """Connect and ``SELECT 1``; raise :class:`DatabaseUnreachable` if that fails.

    Any DBAPI error here was raised while connecting (refused, reset, unknown host, a file
    SQLite cannot open, a server not accepting logins yet), as are OSErrors and timeouts.
    Anything else (a malformed URL, a missing driver) is a real error and propagates.
    """
    import sqlalchemy as sa

    try:
        asyncio.run(_select_one(database_url))
    except (OSError, TimeoutError, sa.exc.DBAPIError) as error:
        raise DatabaseUnreachable(_short(error)) from error


def migrate(database_url: str) -> None:
    """Apply the migrations, or raise :class:`DatabaseUnreachable` when the database is away.

    A migration that fails is a real error only if the database still answers afterwards;
    if it does not, the connection was lost underneath the migration: try again later.
    """
    from mps_callback.store.migrate import upgrade

    probe(database_url)
    try:
        upgrade(database_url)
    except Exception:
        probe(database_url)  # raises DatabaseUnreachable if the failure was the database going away
        raise


def _short(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"


# ---------------------------------------------------------------- the supervisor


class Supervisor:
    """Serve's supervisor thread: migrate once the database answers, then keep a projector alive.

    A thread of serve's main process because uvicorn.run holds the main thread. The
    projector is started from this thread, so its PR_SET_PDEATHSIG follows this thread:
    the thread lives exactly as long as it supervises.
    """

    def __init__(self, database_url: str, directory: Path, *, migrated: bool, run_projector: bool) -> None:
        self._database_url = database_url
        self._directory = directory
        self._migrated = migrated
        self._run_projector = run_projector
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mps-supervisor", daemon=True)
        self.failed = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop restarting, terminate the projector and wait for it (serve's shutdown)."""
        self._stopping.set()
        self._thread.join(STOP_TIMEOUT_SECONDS + 5)

    def _run(self) -> None:
        if not self._migrated and not self._migrate_when_reachable():
            return
        mark_schema_ready(self._directory)
        if self._run_projector:
            self._keep_projector_alive()

    def _migrate_when_reachable(self) -> bool:
        """Retry the migrations with back-off until they are in; False on stop or a real failure.

        serve has just tried once before starting the web workers, so the first try here
        waits a back-off step too.
        """
        backoff = Backoff(first=1.0, longest=10.0)
        delay = backoff.delay()
        while not self._stopping.wait(delay):
            try:
                migrate(self._database_url)
            except DatabaseUnreachable as error:
                delay = backoff.delay()
                log.warning(
                    "database unreachable; migrations wait, notifications go to the spool",
                    extra={"error": str(error), "retry_in_seconds": delay},
                )
                continue
            except Exception:
                log.exception("migrations failed against a database that answers; serve stops")
                self.failed = True
                os.kill(os.getpid(), signal.SIGTERM)  # uvicorn shuts down; serve then exits 1
                return False
            log.info("database migrated")
            return True
        return False

    def _keep_projector_alive(self) -> None:
        backoff = Backoff()
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                projector = start_projector(os.getpid())
            except OSError as error:  # no fork or exec now (memory, pid limit): try again later
                delay = backoff.delay()
                log.error("projector not started", extra={"error": _short(error), "retry_in_seconds": delay})
                self._stopping.wait(delay)
                continue
            log.info("projector started", extra={"pid": projector.pid})
            code = self._wait_for_exit(projector)
            (self._directory / HEARTBEAT_FILE).unlink(missing_ok=True)  # its heartbeat died with it
            (self._directory / DIED_FILE).touch()
            if code is None:  # serve is stopping
                self._terminate(projector)
                return
            ran_for = time.monotonic() - started
            delay = backoff.delay(ran_for)
            log.error(
                "projector died; restarting",
                extra={
                    "pid": projector.pid,
                    **describe_exit(code),
                    "ran_seconds": round(ran_for, 1),
                    "restart_in_seconds": delay,
                },
            )
            self._stopping.wait(delay)

    def _wait_for_exit(self, projector: subprocess.Popen[bytes]) -> int | None:
        """The projector's exit code once it exits (reaping it), or None once serve stops."""
        while not self._stopping.wait(0.5):
            code = projector.poll()
            if code is not None:
                return code
        return None

    @staticmethod
    def _terminate(projector: subprocess.Popen[bytes]) -> None:
        projector.terminate()
        try:
            projector.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            projector.kill()
            projector.wait()
        log.info("projector stopped", extra={"pid": projector.pid})


# ---------------------------------------------------------------- serve


class Terminated(SystemExit):
    """SIGTERM reached serve: unwind to its clean-up (any other SystemExit keeps its meaning)."""


def _exit_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise Terminated(0)


def serve(settings: Settings, run_web: Callable[[], None]) -> int:
    """Run serve's processes until SIGTERM; return the exit code.

    The first migration attempt is made before the web workers start, so a migration
    that fails against a database that answers stops serve at once, as it always did.
    Only when the database cannot be reached does serve start anyway and leave the
    migrations to the supervisor thread.

    uvicorn, after its graceful shutdown, re-raises the SIGTERM it caught with the
    handler it found: with the default one, serve would die before stopping the
    projector. The handler installed here makes that a clean exit instead.
    """
    database_url = settings.database_url.get_secret_value()
    directory = create_runtime_dir(settings.serve_projector)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    supervisor: Supervisor | None = None
    try:
        try:
            migrate(database_url)
            migrated = True
            log.info("database migrated")
        except DatabaseUnreachable as error:
            migrated = False
            log.warning(
                "database unreachable; serving anyway, notifications go to the spool until it answers",
                extra={"error": str(error)},
            )
        except Exception:
            log.exception("migrations failed")
            return 1
        supervisor = Supervisor(database_url, directory, migrated=migrated, run_projector=settings.serve_projector)
        supervisor.start()
        run_web()
    except Terminated:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the shutdown short
        if supervisor is not None:
            supervisor.stop()
        shutil.rmtree(directory, ignore_errors=True)
    return 1 if supervisor is not None and supervisor.failed else 0
