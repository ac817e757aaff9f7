"""The process model: what runs where, what watches over it, and how others can tell.

Two kinds of process, and one table each of what they run (``WEB_WORKER_JOBS``,
``BACKGROUND_JOBS``, below):

- **web workers** (``MPS_WEB_WORKERS`` uvicorn processes): intake, verify and the group
  commit on each request, plus the spool drain every second. Only what each worker must do
  for its own notifications runs here: N web workers must not mean N purges.
- **the background process** (``mps-callback background``): projection, the projection-lag
  gauge every 5 s, the health samples every minute (the dashboard's charts), the retention
  purge every hour (with ``MPS_RETENTION_DAYS``), forwarding (with ``MPS_FORWARD_CONFIG``), the
  queue doors (with ``MPS_CMQ_QUEUE`` / ``MPS_SQS_QUEUE_URL``, and a spool drain of their own),
  reconciliation through the MPS API (with ``MPS_RECONCILE_INTERVAL_SECONDS``).
  Parsing is CPU work that would hold up requests in a web
  worker, and a query over the whole journal needs running once, not once per worker.

``serve`` is one main process. Its main thread runs uvicorn (the web workers); a
supervisor thread beside it first waits for the database and applies the migrations, then
keeps one background process alive (``python -m mps_callback background``, niced, dying
with serve), restarting it with back-off whenever it dies. The web workers take
notifications from the first second, database or not: what the database does not take goes
to the spool, and the spool is drained once the migrations are in. With
``MPS_SERVE_BACKGROUND=false`` serve starts no background process: run
``mps-callback background`` yourself, here or on any machine that reaches the database.

The processes talk through a runtime directory that ``serve`` creates and names in
``MPS_RUNTIME_DIR`` (not a user setting): the background process touches a heartbeat file
there every second, and ``serve`` leaves markers for "the schema is current" and "a
background process is supervised here". :func:`projector_status` reads them for ``/readyz``.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import json
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
from typing import TYPE_CHECKING, Generic, Literal, TypeVar

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from mps_callback.config import Settings
    from mps_callback.forward.config import SinkConfig
    from mps_callback.journal.group_commit import GroupCommitJournal
    from mps_callback.journal.spool import Spool
    from mps_callback.store.outbox import Outbox

log = logging.getLogger(__name__)

#: Names the runtime directory in the environment of serve's web workers and background process.
RUNTIME_DIR_ENV = "MPS_RUNTIME_DIR"
#: Set only in the background process's environment: the pid of the serve process that started it.
PARENT_PID_ENV = "MPS_BACKGROUND_PARENT_PID"
HEARTBEAT_FILE = "background.heartbeat"
SUPERVISED_FILE = "background.supervised"
DIED_FILE = "background.died"  # one has died since serve started: no heartbeat means down
SCHEMA_READY_FILE = "schema.ready"
DOOR_FILE_PREFIX = "door-"
HEALTH_READING_FILE = "health-samples.json"  # the counters' last reading written, for a restarted background process
HEARTBEAT_SECONDS = 1.0
#: A heartbeat older than this means the background process is hung (or gone); a batch of
#: large notifications can hold its event loop for a few seconds, so this is not 2 x the beat.
HEARTBEAT_STALE_SECONDS = 10.0
#: How long after serve starts a background process without a heartbeat yet counts as starting, not down.
STARTING_SECONDS = 30.0
#: How long one reachability probe may take before the database counts as unreachable.
PROBE_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 30.0
#: How long serve waits, after its background process ends, for its own stop signal: a signal sent to the whole
#: process group (Ctrl-C, `systemctl stop`) can reach the child first, and that is not a death to report.
GROUP_SIGNAL_GRACE_SECONDS = 2.0
PR_SET_PDEATHSIG = 1

ProjectorState = Literal["running", "starting", "down", "external"]


# ---------------------------------------------------------------- what runs where

Context = TypeVar("Context")


@dataclass(frozen=True)
class WebWorker:
    """What a web worker's jobs work with (its lifespan builds them)."""

    engine: AsyncEngine
    spool: Spool
    journal: GroupCommitJournal


@dataclass(frozen=True)
class BackgroundProcess:
    """What the background process's jobs work with; ``directory`` is serve's runtime dir (None outside serve)."""

    engine: AsyncEngine
    settings: Settings
    directory: Path | None


def _always(_context: object) -> bool:
    return True


@dataclass(frozen=True)
class Job(Generic[Context]):
    """One thing a process runs: ``run`` every ``seconds``, or once when it loops by itself (``seconds=None``).

    ``wanted`` says whether this process runs it at all (a setting, or being under serve).
    """

    name: str
    run: Callable[[Context], Awaitable[object]]
    seconds: float | None = None
    wanted: Callable[[Context], bool] = _always


async def drain_spool(worker: WebWorker) -> None:
    """Spooled notifications into the journal (under serve, once the migrations are in); the spool gauges."""
    from mps_callback.journal.drain import drain_spool as drain
    from mps_callback.ops import spool_health

    spool, journal = worker.spool, worker.journal
    if (spool.files() or spool.held()) and schema_ready():
        await drain(spool, worker.engine, journal.limit, on_database_down=journal.note_failure, outbox=journal.outbox)
    spool_health(spool)


async def touch_heartbeat(background: BackgroundProcess) -> None:
    """Tell serve (and ``/readyz``) that this process and its event loop are alive.

    A job of its own, so it beats whether or not there is anything to project; a
    projection pass that blocks the loop stops it too.
    """
    if background.directory is None:  # not under serve: BACKGROUND_JOBS does not start it then
        return
    try:
        (background.directory / HEARTBEAT_FILE).touch()
    except OSError as error:  # the directory went away with serve: nothing to tell
        log.debug("heartbeat not written", extra={"error": str(error)})


async def project(background: BackgroundProcess) -> None:
    """Project journal rows as they arrive, forever (the projector waits out database outages itself)."""
    from mps_callback.project.projector import Projector

    await Projector(background.engine, background.settings.output_urls, outbox=outbox()).run_forever()


async def measure_projection_lag(background: BackgroundProcess) -> None:
    """Set the projection-lag and parked-projection gauges that ``/metrics`` shows."""
    from mps_callback.project.projector import projection_health

    await projection_health(background.engine)


async def measure_deliveries(background: BackgroundProcess) -> None:
    """Set the per-sink backlog and dead-delivery gauges that ``/metrics`` shows."""
    from mps_callback.store.deliveries import measure

    await measure(background.engine, [sink.name for sink in forward_sinks()])


async def forward(background: BackgroundProcess) -> None:
    """Deliver the outbox to the sinks of ``MPS_FORWARD_CONFIG``, forever (``mps-callback forward`` alone)."""
    await run_forwarder(background.engine)


async def run_forwarder(engine: AsyncEngine, lease_seconds: float | None = None) -> None:
    from mps_callback.forward.forwarder import LEASE_SECONDS, Forwarder

    forwarder = Forwarder(engine, forward_sinks(), lease_seconds=lease_seconds or LEASE_SECONDS)
    try:
        await forwarder.run_forever()
    finally:
        await forwarder.close()


async def consume_doors(background: BackgroundProcess) -> None:
    """Pull the configured queue doors (``intake/doors.py``) into the journal, forever, with a spool drain
    of their own: outside serve no web worker drains what they spool."""
    from mps_callback.intake.accept import Intake
    from mps_callback.intake.doors import configured_doors, consume
    from mps_callback.journal.group_commit import GroupCommitJournal
    from mps_callback.journal.limits import RowLimit
    from mps_callback.journal.spool import Spool

    settings = background.settings
    spool = Spool(settings.spool_dir)
    journal = GroupCommitJournal(
        background.engine,
        spool,
        settings.journal_budget_seconds,
        limit=RowLimit(settings.max_body_bytes, background.engine.dialect.name),
        outbox=outbox(),
    )
    journal.start()
    intake = Intake(settings, journal)
    queues = [door.open(settings) for door in configured_doors(settings)]
    drain = Job("spool drain", drain_spool, seconds=1.0)
    tasks = start_jobs((drain,), WebWorker(background.engine, spool, journal))
    report = functools.partial(report_door, background.directory)
    tasks += [asyncio.create_task(consume(queue, intake, report), name=f"door {queue.name}") for queue in queues]
    log.info("queue doors consume", extra={"doors": [queue.name for queue in queues]})
    try:
        await asyncio.gather(*tasks)
    finally:
        await stop_jobs(tasks)
        for queue in queues:
            await queue.close()
        await journal.close()
        intake.close()


async def reconcile_with_api(background: BackgroundProcess) -> None:
    """Every ``MPS_RECONCILE_INTERVAL_SECONDS``: recover from the MPS API what no notification brought
    (``reconcile.py``) over the last ``reconcile.DEFAULT_SINCE``."""
    from mps_callback.reconcile import DEFAULT_SINCE, run, since_instant

    engine, settings = background.engine, background.settings
    await every(
        settings.reconcile_interval_seconds,
        lambda: run(engine, settings, since_instant(DEFAULT_SINCE)),
        "reconciliation",
    )


def report_door(directory: Path | None, door: str, state: dict[str, object]) -> None:
    """Keep a door's latest state in serve's runtime directory, for the web workers' ``/readyz``."""
    if directory is None:  # `mps-callback consume` alone: its own logs and metrics say how it goes
        return
    path = directory / f"{DOOR_FILE_PREFIX}{door}.json"
    try:
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state))
        temporary.replace(path)
    except OSError as error:  # the directory went away with serve
        log.debug("door state not written", extra={"error": str(error)})


def door_states(directory: Path | None = None) -> dict[str, dict[str, object]]:
    """Each queue door's state as the background process last reported it, with its age in seconds."""
    directory = directory or runtime_dir()
    if directory is None:
        return {}
    states: dict[str, dict[str, object]] = {}
    for path in sorted(directory.glob(f"{DOOR_FILE_PREFIX}*.json")):
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        at = state.pop("at", None)
        state["age_seconds"] = round(time.time() - at, 3) if isinstance(at, int | float) else None
        states[path.stem.removeprefix(DOOR_FILE_PREFIX)] = state
    return states


def doors_configured(background: BackgroundProcess) -> bool:
    from mps_callback.intake.doors import configured_doors

    return bool(configured_doors(background.settings))


async def sample_health(background: BackgroundProcess) -> None:
    """Write the growth of the service's counters each minute (``health_samples``), for the dashboard's charts."""
    from mps_callback.store.samples import Sampler

    directory = background.directory
    sampler = Sampler(background.engine, saved=directory / HEALTH_READING_FILE if directory else None)
    await every(background.settings.health_sample_seconds, sampler.sample, "health samples")


async def purge_expired(background: BackgroundProcess) -> None:
    """Forget notifications and tasks older than ``MPS_RETENTION_DAYS``."""
    from mps_callback.retention import purge

    await purge(background.engine, background.settings.retention_days)


#: Every web worker runs these beside its requests: only what its own notifications need.
WEB_WORKER_JOBS: tuple[Job[WebWorker], ...] = (Job("spool drain", drain_spool, seconds=1.0),)

#: The background process runs these: each once per deployment, however many web workers serve.
BACKGROUND_JOBS: tuple[Job[BackgroundProcess], ...] = (
    Job("heartbeat", touch_heartbeat, seconds=HEARTBEAT_SECONDS, wanted=lambda b: b.directory is not None),
    Job("projection", project),
    Job("projection lag", measure_projection_lag, seconds=5.0),
    Job("delivery backlog", measure_deliveries, seconds=5.0, wanted=lambda _: forwarding_configured()),
    Job("health samples", sample_health),
    Job("retention purge", purge_expired, seconds=3600.0, wanted=lambda b: b.settings.retention_days > 0),
    Job("forwarding", forward, wanted=lambda _: forwarding_configured()),
    Job("queue doors", consume_doors, wanted=doors_configured),
    Job("reconciliation", reconcile_with_api, wanted=lambda b: b.settings.reconcile_interval_seconds > 0),
)


# ---------------------------------------------------------------- forwarding: the sinks and the outbox

#: ``forward.config.ENVIRONMENT_VARIABLE``, named here so that a deployment without sinks never
#: imports the forward layer (its brokers' clients take a second and more to load in every process).
FORWARD_CONFIG_ENV = "MPS_FORWARD_CONFIG"


def forwarding_configured() -> bool:
    return bool(os.environ.get(FORWARD_CONFIG_ENV, "").strip())


def forward_sinks() -> tuple[SinkConfig, ...]:
    """The sinks of ``MPS_FORWARD_CONFIG`` (none when unset); ``ForwardConfigError`` when it is wrong."""
    if not forwarding_configured():
        return ()
    from mps_callback.forward.config import from_environment

    return from_environment()


def outbox() -> Outbox:
    """What the journal and the projector write delivery rows for: nothing without sinks."""
    from mps_callback.store.outbox import NO_OUTBOX

    sinks = forward_sinks()
    if not sinks:
        return NO_OUTBOX
    from mps_callback.forward.forwarder import outbox_of

    return outbox_of(sinks)


async def every(seconds: float, job: Callable[[], Awaitable[object]], name: str) -> None:
    """Run ``job`` now and then every ``seconds``; a failure is logged and the loop goes on."""
    while True:
        try:
            await job()
        except Exception as error:
            log.warning(
                "background job failed",
                extra={"job": name, "error": f"{type(error).__name__}: {str(error)[:200]}"},
            )
        await asyncio.sleep(seconds)


def start_jobs(jobs: tuple[Job[Context], ...], context: Context) -> list[asyncio.Task[None]]:
    """The ``jobs`` this process wants, each started as a task of the running loop."""
    return [asyncio.create_task(_run(job, context), name=job.name) for job in jobs if job.wanted(context)]


async def _run(job: Job[Context], context: Context) -> None:
    if job.seconds is None:
        await job.run(context)
    else:
        await every(job.seconds, lambda: job.run(context), job.name)


async def stop_jobs(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def run_background(engine: AsyncEngine, settings: Settings) -> None:
    """The background process's jobs, until one that should run forever ends (its error propagates).

    Under serve that ends this process, and serve starts a new one after a back-off.
    """
    tasks = start_jobs(BACKGROUND_JOBS, BackgroundProcess(engine, settings, runtime_dir()))
    log.info("background process runs", extra={"jobs": [task.get_name() for task in tasks]})
    try:
        await asyncio.gather(*tasks)
    finally:
        await stop_jobs(tasks)


# ---------------------------------------------------------------- the runtime directory


def runtime_dir() -> Path | None:
    """The directory serve created for this instance, or None outside serve."""
    named = os.environ.get(RUNTIME_DIR_ENV)
    return Path(named) if named else None


def create_runtime_dir(supervise_background: bool) -> Path:
    """A fresh directory for this serve, named in the environment its children inherit.

    Always fresh, never taken from the user: a heartbeat left by an earlier serve must not
    make a dead background process look alive.
    """
    directory = Path(tempfile.mkdtemp(prefix="mps-callback-run-"))
    os.environ[RUNTIME_DIR_ENV] = str(directory)
    if supervise_background:
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
    """Seconds since the background process last touched its heartbeat; None when there is none."""
    try:
        touched = (directory / HEARTBEAT_FILE).stat().st_mtime
    except FileNotFoundError:
        return None
    return max(0.0, (time.time() if now is None else now) - touched)


def projector_status(directory: Path | None = None) -> dict[str, object]:
    """Is serve's background process (which runs the projector) alive, for a web worker's ``/readyz``.

    ``external``: this serve runs none (``MPS_SERVE_BACKGROUND=false``, or not under serve
    at all); ``running``: the heartbeat is fresh; ``starting``: no heartbeat yet, serve
    started moments ago; ``down``: dead, hung, restarting, or not started because the
    database has not been migrated. The key stays ``projector``: what ``/readyz`` has always said.
    """
    directory = directory or runtime_dir()
    if directory is None or not (supervised := directory / SUPERVISED_FILE).exists():
        return {"projector": "external", "heartbeat_age_seconds": None}
    age = heartbeat_age(directory)
    state: ProjectorState = "running" if age is not None and age <= HEARTBEAT_STALE_SECONDS else "down"
    first = not (directory / DIED_FILE).exists()
    if age is None and first and time.time() - supervised.stat().st_mtime < STARTING_SECONDS:
        state = "starting"
    status: dict[str, object] = {"projector": state, "heartbeat_age_seconds": None if age is None else round(age, 3)}
    if doors := door_states(directory):
        status["doors"] = doors  # the queue doors run in the background process too
    return status


# ---------------------------------------------------------------- the background process


def start_background(parent_pid: int) -> subprocess.Popen[bytes]:
    """The background process beside the web workers.

    The child lowers its own priority and arranges to die with serve
    (:func:`attach_to_serve`), rather than a ``preexec_fn`` doing it between fork and exec,
    which is unsafe in a process that runs threads (serve does).
    """
    env = {**os.environ, PARENT_PID_ENV: str(parent_pid)}
    return subprocess.Popen([sys.executable, "-m", "mps_callback", "background"], env=env)


def attach_to_serve() -> None:
    """In a background process serve started: nice it and tie its life to serve's.

    PR_SET_PDEATHSIG sends SIGTERM when the thread that started this process ends (serve's
    supervisor thread), even after a kill -9 of serve. If serve died before the prctl, the
    parent pid has already changed: leave at once. Outside serve, nothing changes.
    """
    parent = os.environ.pop(PARENT_PID_ENV, None)
    if parent is None:
        return
    os.nice(10)
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(parent):
        sys.exit(0)


@dataclass
class Backoff:
    """1 s, 2 s, 4 s ... up to ``longest``; back to ``first`` after a run of ``settled`` seconds.

    A background process that crashes at start (a bad deploy, a database refusing it) must not spin;
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
    """Serve's supervisor thread: migrate once the database answers, then keep the background process alive.

    A thread of serve's main process because uvicorn.run holds the main thread. The
    background process is started from this thread, so its PR_SET_PDEATHSIG follows this
    thread: the thread lives exactly as long as it supervises.
    """

    def __init__(self, database_url: str, directory: Path, *, migrated: bool, run_background: bool) -> None:
        self._database_url = database_url
        self._directory = directory
        self._migrated = migrated
        self._run_background = run_background
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mps-supervisor", daemon=True)
        self.failed = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop restarting, terminate the background process and wait for it (serve's shutdown)."""
        self._stopping.set()
        self._thread.join(STOP_TIMEOUT_SECONDS + 5)

    def _run(self) -> None:
        if not self._migrated and not self._migrate_when_reachable():
            return
        mark_schema_ready(self._directory)
        if self._run_background:
            self._keep_background_alive()

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

    def _keep_background_alive(self) -> None:
        backoff = Backoff()
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                process = start_background(os.getpid())
            except OSError as error:  # no fork or exec now (memory, pid limit): try again later
                delay = backoff.delay()
                log.error("background process not started", extra={"error": _short(error), "retry_in_seconds": delay})
                self._stopping.wait(delay)
                continue
            log.info("background process started", extra={"pid": process.pid})
            code = self._wait_for_exit(process)
            (self._directory / HEARTBEAT_FILE).unlink(missing_ok=True)  # its heartbeat died with it
            (self._directory / DIED_FILE).touch()
            # serve is stopping; a Ctrl-C or a systemd stop signals the whole group, so the child may end first
            if code is None or self._stopping.wait(GROUP_SIGNAL_GRACE_SECONDS):
                self._terminate(process)
                return
            ran_for = time.monotonic() - started
            delay = backoff.delay(ran_for)
            log.error(
                "background process died; restarting",
                extra={
                    "pid": process.pid,
                    **describe_exit(code),
                    "ran_seconds": round(ran_for, 1),
                    "restart_in_seconds": delay,
                },
            )
            self._stopping.wait(delay)

    def _wait_for_exit(self, process: subprocess.Popen[bytes]) -> int | None:
        """The process's exit code once it exits (reaping it), or None once serve stops."""
        while not self._stopping.wait(0.5):
            code = process.poll()
            if code is not None:
                return code
        return None

    @staticmethod
    def _terminate(process: subprocess.Popen[bytes]) -> None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.info("background process stopped", extra={"pid": process.pid})


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
    background process. The handler installed here makes that a clean exit instead.
    """
    database_url = settings.database_url.get_secret_value()
    directory = create_runtime_dir(settings.serve_background)
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
        supervisor = Supervisor(database_url, directory, migrated=migrated, run_background=settings.serve_background)
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
