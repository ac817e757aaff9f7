"""The ``mps-callback`` command line."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional, TypeVar

import orjson
import typer

from mps_callback.config import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")

app = typer.Typer(help="Receiver for Tencent Cloud MPS task notifications.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
spool_app = typer.Typer(help="The local spool used while the database is down.", no_args_is_help=True)
app.add_typer(spool_app, name="spool")

log = logging.getLogger("mps_callback")


def load_settings() -> Settings:
    """The settings, or exit 2 with one line naming each bad one (a traceback hides the reason from operators)."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as invalid:
        reasons = "; ".join(
            f"MPS_{'_'.join(str(part) for part in error['loc']).upper()}: {error['msg'].removeprefix('Value error, ')}"
            for error in invalid.errors()
        )
        typer.echo(f"invalid settings: {reasons}".replace("\n", " "), err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option(help="default MPS_HOST")] = None,
    port: Annotated[Optional[int], typer.Option(help="default MPS_PORT")] = None,
    workers: Annotated[Optional[int], typer.Option(help="default MPS_WORKERS")] = None,
) -> None:
    """Take notifications until SIGTERM (in-flight requests finish); migrate the database once it answers."""
    import uvicorn

    from mps_callback import runtime
    from mps_callback.logs import configure_logging, logging_config

    settings = load_settings()
    configure_logging(settings.log_level)
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:  # web workers and projector add up in /metrics
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mps-callback-metrics-")

    def run_web() -> None:
        log.info("starting", extra={"host": host or settings.host, "port": port or settings.port})
        uvicorn.run(
            "mps_callback.app:create_app",
            factory=True,
            host=host or settings.host,
            port=port or settings.port,
            workers=workers or settings.workers,
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


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the database migrations (serve does this on start)."""
    from mps_callback.logs import configure_logging
    from mps_callback.store.migrate import upgrade

    settings = load_settings()
    configure_logging(settings.log_level)
    upgrade(settings.database_url.get_secret_value())
    typer.echo("database is at the latest revision")


@app.command()
def parse(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a notification JSON file")]) -> None:
    """Print what mps-callback extracts from FILE (task, subtasks, outputs, segments), touching no database."""
    from mps_callback.errors import Refused
    from mps_callback.intake.envelope import decode, unwrap
    from mps_callback.project.parse import parse as parse_notification
    from mps_callback.verify.redact import redact

    try:
        notification, _ = unwrap(decode(file.read_bytes()))
        redact(notification)
        projection = parse_notification(notification, load_settings().cdn_domains)
    except Refused as refused:
        typer.echo(f"not an MPS notification: {refused.reason}", err=True)
        raise typer.Exit(2) from None
    typer.echo(orjson.dumps(projection, option=orjson.OPT_INDENT_2).decode())


def with_engine(job: Callable[[AsyncEngine, Settings], Awaitable[T]]) -> T:
    """Run ``job`` against the configured database with logging set up, then close the engine."""
    from mps_callback.logs import configure_logging
    from mps_callback.store.engine import create_engine

    settings = load_settings()
    configure_logging(settings.log_level)

    async def run() -> T:
        engine = create_engine(settings.database_url.get_secret_value())
        try:
            return await job(engine, settings)
        finally:
            await engine.dispose()

    return asyncio.run(run())


@app.command()
def worker() -> None:
    """Project journal rows as they arrive, beside (or instead of) the projector inside serve."""
    from mps_callback import runtime
    from mps_callback.project.projector import Projector

    runtime_dir = runtime.attach_to_serve()

    async def project(engine: AsyncEngine, settings: Settings) -> None:
        log.info("projection worker started")
        await runtime.with_heartbeat(runtime_dir, Projector(engine, settings.cdn_domains).run_forever())

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        with_engine(project)
    except (KeyboardInterrupt, SystemExit):
        pass


@app.command()
def reproject(
    failed: Annotated[bool, typer.Option("--failed", help="only retry notifications whose projection was parked")] = False,
) -> None:
    """Rebuild every projection from the journal (after an upgrade, or a CDN domain change)."""
    from mps_callback.project.projector import Projector, reset_projections, retry_failed

    async def rebuild(engine: AsyncEngine, settings: Settings) -> int:
        total = await (retry_failed(engine) if failed else reset_projections(engine))
        with typer.progressbar(length=total, label="reprojecting", file=sys.stderr) as bar:
            return await Projector(engine, settings.cdn_domains).drain(bar.update)

    typer.echo(f"reprojected {with_engine(rebuild)} notifications")


@spool_app.command("drain")
def spool_drain() -> None:
    """Move spooled notifications into the database now (serve does this every second)."""
    from mps_callback.journal.drain import drain_spool
    from mps_callback.journal.spool import Spool

    spool = Spool(load_settings().spool_dir)
    moved = with_engine(lambda engine, _: drain_spool(spool, engine))
    left = spool.depth()
    typer.echo(f"drained {moved} notifications; {left} left in the spool")
    if left:
        raise typer.Exit(1)


@spool_app.command("requeue")
def spool_requeue() -> None:
    """Put quarantined records back in the spool (after fixing what refused them); serve drains them."""
    from mps_callback.journal.spool import Spool

    requeued, damaged = Spool(load_settings().spool_dir).requeue()
    typer.echo(f"requeued {requeued} notifications; {damaged} damaged records stay in quarantine")


@app.command()
def purge(days: Annotated[Optional[int], typer.Option(help="default MPS_RETENTION_DAYS")] = None) -> None:
    """Delete notifications and tasks older than the retention period."""
    from mps_callback.retention import purge as purge_older

    keep = days if days is not None else load_settings().retention_days
    if keep <= 0:
        raise typer.BadParameter("set --days or MPS_RETENTION_DAYS to a positive number", param_hint="--days")
    removed = with_engine(lambda engine, _: purge_older(engine, keep))
    typer.echo(f"removed {removed['notifications']} notifications and {removed['tasks']} tasks older than {keep} days")


@app.command()
def send(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a notification JSON file")],
    url: Annotated[str, typer.Option(help="the receiver's callback URL")] = "http://127.0.0.1:8787/v1/mps/callback",
    key: Annotated[
        Optional[str], typer.Option(help="NotifyKey to sign with; default the first of MPS_NOTIFY_KEYS, none: unsigned")
    ] = None,
) -> None:
    """Sign FILE with a fresh Timestamp (now + 600 s) and POST it, as MPS would; print the answer."""
    from mps_callback.send import post, stamp

    notification = orjson.loads(file.read_bytes())
    if not isinstance(notification, dict):
        raise typer.BadParameter("the file must hold a JSON object", param_hint="FILE")
    if key is None:
        configured = load_settings().notify_key_values
        key = configured[0] if configured else None
    response = post(url, stamp(notification, key))
    typer.echo(f"{response.status_code} {response.text}")
    if response.status_code >= 300:
        raise typer.Exit(1)
