"""The ``mps-callback`` command line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import orjson
import typer

from mps_callback.config import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from mps_callback.store.deliveries import Selection

T = TypeVar("T")

app = typer.Typer(help="Receiver for Tencent Cloud MPS task notifications.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
spool_app = typer.Typer(help="The local spool used while the database is down.", no_args_is_help=True)
app.add_typer(spool_app, name="spool")
deliveries_app = typer.Typer(help="The outbox: events owed to the sinks of MPS_FORWARD_CONFIG.", no_args_is_help=True)
app.add_typer(deliveries_app, name="deliveries")

log = logging.getLogger("mps_callback")

#: Exit codes: the job could not be done (a server or database that does not answer, a refusal),
#: or what was asked makes no sense (a file that is not a notification, a missing option).
EXIT_FAILED = 1
EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """One line on stderr and a non-zero exit: what an operator reads for an ordinary error, never a traceback."""
    typer.echo(" ".join(message.split()), err=True)
    raise typer.Exit(code)


def load_settings() -> Settings:
    """The settings, or one line naming the variable that is wrong (pydantic's report spans many)."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(f"{_variable(e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in error.errors())
        fail(f"bad configuration: {problems}", EXIT_USAGE)


def _variable(location: tuple[int | str, ...]) -> str:
    """The environment variable a settings error is about (a renamed setting's is named in full already)."""
    name = "_".join(map(str, location)).upper()
    return name if name.startswith("MPS_") else f"MPS_{name}"


def read_json_object(file: Path) -> dict[str, Any]:
    """The JSON object in ``file``, or one line saying why it is not one."""
    from mps_callback.errors import Refused
    from mps_callback.intake.envelope import decode

    try:
        return decode(file.read_bytes())
    except OSError as error:
        fail(f"cannot read {file}: {error.strerror or error}", EXIT_USAGE)
    except Refused as refused:
        fail(f"{file}: {refused.reason}", EXIT_USAGE)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="default MPS_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="default MPS_PORT")] = None,
    web_workers: Annotated[
        int | None, typer.Option("--web-workers", "--workers", help="default MPS_WEB_WORKERS")
    ] = None,
) -> None:
    """Take notifications until SIGTERM (in-flight requests finish); migrate the database once it answers.

    Runs the web workers and, unless MPS_SERVE_BACKGROUND=false, one background process
    (projection, projection lag, retention purge, forwarding and its backlog), restarted with back-off if it dies.
    """
    import uvicorn

    from mps_callback import runtime
    from mps_callback.config import RENAMED, renamed_settings_in_use
    from mps_callback.logs import configure_logging, logging_config

    settings = load_settings()
    check_forward_config()
    check_door_config(settings)
    if settings.reconcile_interval_seconds > 0:
        check_reconcile_config()
    configure_logging(settings.log_level)
    for old in renamed_settings_in_use():
        log.warning("%s is now %s; the old name is read for this release only", old, RENAMED[old])
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:  # web workers and background process add up in /metrics
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mps-callback-metrics-")

    def run_web() -> None:
        log.info("starting", extra={"host": host or settings.host, "port": port or settings.port})
        uvicorn.run(
            "mps_callback.app:create_app",
            factory=True,
            host=host or settings.host,
            port=port or settings.port,
            workers=web_workers or settings.web_workers,
            access_log=False,
            log_config=logging_config(settings.log_level),
            timeout_graceful_shutdown=30,
            limit_concurrency=settings.limit_concurrency,  # 503 beyond: a flood of connections is bounded
            loop="uvloop",
            http="httptools",
        )

    code = runtime.serve(settings, run_web)
    if code:
        raise typer.Exit(code)


def check_forward_config() -> None:
    """A bad ``MPS_FORWARD_CONFIG`` stops the command at start with its one line, before any event is owed."""
    from mps_callback import runtime

    if not runtime.forwarding_configured():
        return
    from mps_callback.forward.config import ForwardConfigError

    try:
        runtime.forward_sinks()
    except ForwardConfigError as error:
        fail(f"bad configuration: {error}", EXIT_USAGE)


def check_door_config(settings: Settings) -> None:
    """A queue door the settings ask for but cannot open stops the command at start with one line (no secret)."""
    if settings.cmq_queue or settings.cmq_endpoint:
        from mps_callback.intake.cmq import configuration_error as cmq_problem

        if problem := cmq_problem(settings):
            fail(f"bad configuration: {problem}", EXIT_USAGE)
    if settings.sqs_queue_url:
        from mps_callback.intake.sqs import configuration_error as sqs_problem

        if problem := sqs_problem(settings):
            fail(f"bad configuration: {problem}", EXIT_USAGE)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (serve does this on start)."""
    import sqlalchemy as sa

    from mps_callback.logs import configure_logging
    from mps_callback.store.errors import describe
    from mps_callback.store.migrate import upgrade

    settings = load_settings()
    configure_logging(settings.log_level)
    try:
        upgrade(settings.database_url.get_secret_value())
    except (sa.exc.SQLAlchemyError, OSError, TimeoutError) as error:
        fail(f"database error ({database_label(settings)}): {describe(error)}")
    typer.echo("database is at the latest revision")


@app.command()
def parse(file: Annotated[Path, typer.Argument(dir_okay=False, help="a notification JSON file")]) -> None:
    """Print what mps-callback extracts from FILE (task, subtasks, outputs, segments), touching no database.

    FILE may be wrapped as the receiver accepts it (CMQ ``msgBody``, API ``Response``): the
    same unwrap as the receiver's takes the notification out.
    """
    from mps_callback.errors import Refused
    from mps_callback.intake.envelope import unwrap
    from mps_callback.project.parse import parse as parse_notification
    from mps_callback.verify.redact import redact
    from mps_callback.verify.shape import check_depth

    document = read_json_object(file)
    try:
        notification, _ = unwrap(document)
        check_depth(notification)
        redact(notification)
        projection = parse_notification(notification, load_settings().output_urls)
    except Refused as refused:
        fail(f"the receiver would refuse {file.name} ({refused.code}): {refused.reason}", EXIT_USAGE)
    if projection is None:
        typer.echo(
            f"a Tencent VOD {notification.get('EventType')} event: the receiver journals it, "
            "but it is not an MPS task, so nothing is projected",
            err=True,
        )
    typer.echo(orjson.dumps(projection, option=orjson.OPT_INDENT_2).decode())


def with_engine(job: Callable[[AsyncEngine, Settings], Awaitable[T]]) -> T:
    """Run ``job`` against the configured database with logging set up, then close the engine.

    A database that does not answer (or refuses) ends the command with one line naming it,
    password hidden, and exit 1.
    """
    import sqlalchemy as sa

    from mps_callback.logs import configure_logging
    from mps_callback.store.engine import create_engine
    from mps_callback.store.errors import describe

    settings = load_settings()
    configure_logging(settings.log_level)

    async def run() -> T:
        engine = create_engine(settings.database_url.get_secret_value())
        try:
            return await job(engine, settings)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except (sa.exc.SQLAlchemyError, OSError, TimeoutError) as error:
        fail(f"database error ({database_label(settings)}): {describe(error)}")


def database_label(settings: Settings) -> str:
    """The database URL as an operator may see it: without its password."""
    from sqlalchemy.engine import make_url

    url = settings.database_url.get_secret_value()
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: say so without echoing it
        return "MPS_DATABASE_URL"


@app.command()
def background() -> None:
    """Run the background jobs (projection, projection lag, retention purge, forwarding and its backlog) until SIGTERM.

    serve starts one itself; run this where serve runs with MPS_SERVE_BACKGROUND=false, or
    beside it: any number can project at once (FOR UPDATE SKIP LOCKED).
    """
    from mps_callback import runtime

    runtime.attach_to_serve()  # started by serve: niced, and dies with it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        with_engine(runtime.run_background)


@app.command()
def forward(
    lease: Annotated[
        float, typer.Option(min=1.0, help="seconds a claimed delivery is kept from other forwarders")
    ] = 60.0,
) -> None:
    """Deliver the outbox to the sinks of MPS_FORWARD_CONFIG until SIGTERM.

    serve's background process forwards already; run more of these to scale out: any number
    can forward at once (FOR UPDATE SKIP LOCKED), each delivery at least once.
    """
    from mps_callback import runtime

    check_forward_config()
    if not runtime.forwarding_configured():
        fail("nothing to forward: MPS_FORWARD_CONFIG names no sink file", EXIT_USAGE)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        with_engine(lambda engine, _settings: runtime.run_forwarder(engine, lease))


@app.command()
def consume() -> None:
    """Pull the configured queue doors (MPS_CMQ_QUEUE, MPS_SQS_QUEUE_URL) into the journal until SIGTERM.

    serve's background process consumes them already; run more of these to scale out: each
    message is acknowledged only once it is durable, and a redelivery is a duplicate.
    """
    from mps_callback import runtime
    from mps_callback.intake.doors import configured_doors

    settings = load_settings()
    check_door_config(settings)
    if not configured_doors(settings):
        fail("nothing to consume: no queue door is configured (MPS_CMQ_QUEUE, MPS_SQS_QUEUE_URL)", EXIT_USAGE)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        with_engine(lambda engine, settings: runtime.consume_doors(runtime.BackgroundProcess(engine, settings, None)))


@app.command()
def reconcile(
    since: Annotated[
        str, typer.Option(help="how far back: a duration (30m, 72h, 7d) or an ISO 8601 time; at most 7 days")
    ] = "72h",
) -> None:
    """Recover from the MPS API (DescribeTasks, DescribeTaskDetail) the tasks no notification brought.

    Every task of the window missing from the tasks table, or not final there, is fetched and
    journaled as a notification on channel api: it projects and forwards like any other.
    Needs TENCENTCLOUD_SECRET_ID / TENCENTCLOUD_SECRET_KEY (mps:DescribeTasks, mps:DescribeTaskDetail).
    """
    from mps_callback import reconcile as reconciliation

    try:
        instant = reconciliation.since_instant(since)
    except reconciliation.BadSince as error:
        fail(str(error), EXIT_USAGE)
    check_reconcile_config()
    summary = with_engine(lambda engine, settings: _reconcile(engine, settings, instant))
    typer.echo(orjson.dumps(summary.as_dict()).decode())
    if summary.failed:
        fail(f"{len(summary.failed)} task(s) not recovered, e.g. {summary.failed[0]}: see the log")


async def _reconcile(engine: AsyncEngine, settings: Settings, since: datetime) -> Any:
    """One reconciliation; an MPS API that refuses (credentials, permissions, unreachable) ends it in one line."""
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

    from mps_callback.reconcile import run

    try:
        return await run(engine, settings, since)
    except TencentCloudSDKException as error:
        fail(f"MPS API error: {error.code}: {str(error.message)[:200]}")


def check_reconcile_config() -> None:
    """Reconciliation without credentials would fail on every run: stop at start with one line instead."""
    if not (os.environ.get("TENCENTCLOUD_SECRET_ID") and os.environ.get("TENCENTCLOUD_SECRET_KEY")):
        fail("bad configuration: reconciliation needs TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY", EXIT_USAGE)


@app.command(hidden=True)
def worker() -> None:
    """The old name of ``background``, kept for one release."""
    from mps_callback.logs import configure_logging

    configure_logging(load_settings().log_level)
    log.warning("`mps-callback worker` is now `mps-callback background`; the old name works for this release only")
    background()


@app.command()
def reproject(
    task: Annotated[
        list[str] | None,
        typer.Option("--task", metavar="TASK_ID", help="only this task (repeat for several)"),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            metavar="DATETIME", help="only tasks that received a notification since then (ISO 8601; no offset: UTC)"
        ),
    ] = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="only retry notifications whose projection was parked")
    ] = False,
) -> None:
    """Rebuild projections from the journal (after an upgrade, or a CDN domain change), a batch of tasks at a time.

    With no option every task is rebuilt; options narrow it and combine, e.g. --task A --since 2026-01-01.
    """
    from mps_callback import runtime
    from mps_callback.project.projector import Projector
    from mps_callback.project.reproject import Selection, count, utc_instant
    from mps_callback.project.reproject import reproject as rebuild_selection

    check_forward_config()
    try:
        selection = Selection(tuple(task or ()), None if since is None else utc_instant(since), failed)
    except ValueError:
        fail(
            f"bad --since {since!r}: give an ISO 8601 date or time, e.g. 2026-01-31 or 2026-01-31T08:00:00+08:00",
            EXIT_USAGE,
        )

    async def rebuild(engine: AsyncEngine, settings: Settings) -> int:
        total = await count(engine, selection)
        with typer.progressbar(length=total, label="reprojecting", file=sys.stderr) as bar:
            # With the sinks' outbox: a notification that arrives meanwhile is news, owed like any other.
            projector = Projector(engine, settings.output_urls, outbox=runtime.outbox())
            return await rebuild_selection(engine, projector, selection, bar.update)

    typer.echo(f"reprojected {with_engine(rebuild)} notifications")


@spool_app.command("drain")
def spool_drain() -> None:
    """Move spooled notifications into the database now (serve does this every second)."""
    from mps_callback.journal.drain import drain_spool
    from mps_callback.journal.spool import Spool

    settings = load_settings()
    spool = Spool(settings.spool_dir)
    down: list[str] = []
    moved = with_engine(lambda engine, _: drain_spool(spool, engine, on_database_down=down.append))
    left = spool.depth()
    if down:
        fail(
            f"database unavailable ({database_label(settings)}): {down[0]}; "
            f"drained {moved}, {left} notifications stay in the spool"
        )
    typer.echo(f"drained {moved} notifications; {left} left in the spool")
    if left:
        raise typer.Exit(EXIT_FAILED)


@spool_app.command("requeue")
def spool_requeue() -> None:
    """Put quarantined records back in the spool (after fixing what refused them); serve drains them."""
    from mps_callback.journal.spool import Spool

    requeued, damaged = Spool(load_settings().spool_dir).requeue()
    typer.echo(f"requeued {requeued} notifications; {damaged} damaged records stay in quarantine")


SinkOption = Annotated[str | None, typer.Option(metavar="NAME", help="only this sink (its [[sink]] name)")]
SinceOption = Annotated[
    str | None, typer.Option(metavar="DATETIME", help="only those created since then (ISO 8601; no offset: UTC)")
]


def _since(since: str | None) -> datetime | None:
    return None if since is None else _instant(since)


def _instant(since: str) -> datetime:
    """``--since`` as a UTC instant, or one line saying what is expected."""
    from mps_callback.project.reproject import utc_instant

    try:
        return utc_instant(since)
    except ValueError:
        fail(
            f"bad --since {since!r}: give an ISO 8601 date or time, e.g. 2026-01-31 or 2026-01-31T08:00:00+08:00",
            EXIT_USAGE,
        )


def _status(status: str | None, allowed: tuple[str, ...]) -> str | None:
    if status is not None and status not in allowed:
        fail(f"bad --status {status!r}: one of {', '.join(allowed)}", EXIT_USAGE)
    return status


TaskOption = Annotated[str | None, typer.Option(metavar="TASK_ID", help="only those of this task (its TaskId)")]
EventOption = Annotated[
    str | None,
    typer.Option(
        metavar="TYPE", help="only this event type: notification.received, task.updated, task.finished or task.failed"
    ),
]
#: The longest TaskId the tables hold: a longer one could match nothing, so it is refused as a mistake.
TASK_ID_CHARS = 255


def _task(task: str | None) -> str | None:
    if task is not None and not 0 < len(task) <= TASK_ID_CHARS:
        fail(f"bad --task: a TaskId of 1 to {TASK_ID_CHARS} characters, not {len(task)}", EXIT_USAGE)
    return task


def _event(event: str | None) -> str | None:
    from mps_callback.store.outbox import EVENT_TYPES

    if event is not None and event not in EVENT_TYPES:
        fail(f"bad --event {event[:64]!r}: one of {', '.join(EVENT_TYPES)}", EXIT_USAGE)
    return event


def _selection(
    sink: str | None,
    status: str | None,
    statuses: tuple[str, ...],
    task: str | None,
    event: str | None,
    since: str | None,
    ids: list[int] | None = None,
) -> Selection:
    """The options both commands share, each checked, as the store's :class:`Selection`."""
    from mps_callback.store.deliveries import Selection

    return Selection(
        sink=sink,
        status=_status(status, statuses),
        task_id=_task(task),
        event=_event(event),
        since=_since(since),
        ids=tuple(ids or ()),
    )


@deliveries_app.command("list")
def deliveries_list(
    sink: SinkOption = None,
    status: Annotated[str | None, typer.Option(help="pending, delivered or dead")] = None,
    task: TaskOption = None,
    event: EventOption = None,
    since: SinceOption = None,
    limit: Annotated[int, typer.Option(min=1, help="at most this many")] = 100,
) -> None:
    """Deliveries, newest first, as JSON lines (one object per delivery, for jq and scripts).

    Each names its sink only, never its URL; GET /v1/deliveries/{id} shows one's attempts.
    """
    import sqlalchemy as sa

    from mps_callback.store.tables import DELIVERY_STATUSES, deliveries

    selection = _selection(sink, status, DELIVERY_STATUSES, task, event, since)
    columns = [column for column in deliveries.c if column.name != "data"]

    async def read(engine: AsyncEngine, _settings: Settings) -> list[dict[str, Any]]:
        query = sa.select(*columns).where(*selection.where()).order_by(deliveries.c.id.desc()).limit(limit)
        async with engine.connect() as connection:
            rows = (await connection.execute(query)).mappings()
            # keys as plain str: SQLAlchemy's are a str subclass that orjson refuses as keys
            return [{str(name): value for name, value in row.items()} for row in rows]

    for row in with_engine(read):
        typer.echo(orjson.dumps(row, option=orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z).decode())


@deliveries_app.command("retry")
def deliveries_retry(
    ids: Annotated[list[int] | None, typer.Argument(metavar="[ID]...", help="only these deliveries")] = None,
    sink: SinkOption = None,
    status: Annotated[str | None, typer.Option(help="pending or dead; default both")] = None,
    task: TaskOption = None,
    event: EventOption = None,
    since: SinceOption = None,
) -> None:
    """Make matching pending or dead deliveries due now (their attempts kept); delivered ones stay delivered.

    With no ID and no option, every pending or dead delivery; the forwarder sends them at once.
    """
    from mps_callback.store.deliveries import RETRYABLE, retry
    from mps_callback.store.engine import for_writing

    selection = _selection(sink, status, RETRYABLE, task, event, since, ids)

    async def due_now(engine: AsyncEngine, _settings: Settings) -> int:
        async with for_writing(engine).begin() as connection:
            return await retry(connection, selection)

    typer.echo(f"made {with_engine(due_now)} deliveries due now")


@deliveries_app.command("backfill")
def deliveries_backfill(
    sink: Annotated[str, typer.Option(metavar="NAME", help="a [[sink]] name in MPS_FORWARD_CONFIG")],
    since: Annotated[
        str, typer.Option(metavar="DATETIME", help="what was received since then (ISO 8601; no offset: UTC)")
    ],
) -> None:
    """Catch a sink up: deliveries for what happened since DATETIME, as its filters want them.

    A sink added later receives only new events; this owes it notification.received for each
    notification received since then, and one task.updated, task.finished or task.failed per
    task heard of since then, carrying the task as it stands now (new event ids).
    """
    from mps_callback import runtime
    from mps_callback.store.deliveries import backfill
    from mps_callback.store.engine import for_writing

    check_forward_config()
    start = _instant(since)
    subscription = next((each for each in runtime.outbox().subscriptions if each.sink == sink), None)
    if subscription is None:
        configured = ", ".join(each.name for each in runtime.forward_sinks()) or "none"
        fail(f"unknown sink {sink!r}: MPS_FORWARD_CONFIG names {configured}", EXIT_USAGE)

    async def owe(engine: AsyncEngine, _settings: Settings) -> dict[str, int]:
        async with for_writing(engine).begin() as connection:
            return await backfill(connection, subscription, start)

    written = with_engine(owe)
    typer.echo(
        f"owed {written['notification.received']} notification.received and {written['task']} task events to {sink}"
    )


@app.command()
def purge(days: Annotated[int | None, typer.Option(help="default MPS_RETENTION_DAYS")] = None) -> None:
    """Delete notifications and tasks older than the retention period."""
    from mps_callback.retention import purge as purge_older

    keep = days if days is not None else load_settings().retention_days
    if keep <= 0:
        fail("set --days or MPS_RETENTION_DAYS to a positive number", EXIT_USAGE)
    removed = with_engine(lambda engine, _: purge_older(engine, keep))
    typer.echo(
        f"removed {removed['notifications']} notifications and {removed['tasks']} tasks older than {keep} days, "
        f"and {removed['deliveries']} delivered or dead deliveries"
    )


@app.command()
def send(
    file: Annotated[
        Path, typer.Argument(dir_okay=False, help="a notification JSON file (bare, CMQ msgBody or API Response)")
    ],
    url: Annotated[
        str | None, typer.Option(help="the receiver's callback URL; default from MPS_HOST and MPS_PORT")
    ] = None,
    key: Annotated[
        str | None, typer.Option(help="NotifyKey to sign with; default the first of MPS_NOTIFY_KEYS, none: unsigned")
    ] = None,
) -> None:
    """Sign FILE with a fresh Timestamp (now + 600 s) and POST it, as MPS would; print the answer.

    In a CMQ envelope the notification inside ``msgBody`` is signed: that is what the receiver verifies.
    """
    import httpx

    from mps_callback.errors import Refused
    from mps_callback.send import default_url, post, stamp

    document = read_json_object(file)
    settings = load_settings()
    url = url or default_url(settings.host, settings.port)
    if key is None:
        key = next(iter(settings.notify_key_values), None)
    try:
        response = post(url, stamp(document, key))
    except Refused as refused:
        fail(f"{file}: {refused.reason}", EXIT_USAGE)
    except httpx.InvalidURL as error:
        fail(f"bad --url {url}: {error}", EXIT_USAGE)
    except httpx.HTTPError as error:
        fail(f"cannot reach {url}: {error or type(error).__name__}")
    if not key:
        typer.echo("posted unsigned: no --key, and MPS_NOTIFY_KEYS is empty", err=True)
    typer.echo(f"{response.status_code} {response.text}")
    if response.status_code >= 300:
        raise typer.Exit(EXIT_FAILED)
