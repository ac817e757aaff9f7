"""Build the FastAPI application from the layers: intake, journal, query API, operations.

This is what one web worker runs; what else it runs beside its requests, and what runs
in the background process instead, is ``runtime.py``'s to say.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from mps_callback import __version__, ops, runtime
from mps_callback.api import deliveries as delivery_routes
from mps_callback.api import notifications as notification_routes
from mps_callback.api import subtitles as subtitle_routes
from mps_callback.api import tasks as task_routes
from mps_callback.api.auth import require_api_token
from mps_callback.api.errors import DATABASE_ERRORS, database_error
from mps_callback.config import Settings
from mps_callback.intake import http as intake_http
from mps_callback.intake.accept import Intake
from mps_callback.intake.http import CallbackDoor
from mps_callback.journal.group_commit import GroupCommitJournal
from mps_callback.journal.limits import RowLimit
from mps_callback.journal.spool import Spool
from mps_callback.store.engine import create_engine
from mps_callback.ui import routes as ui_routes

log = logging.getLogger("mps_callback")


def create_app(settings: Settings | None = None) -> CallbackDoor:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url.get_secret_value())
        spool = Spool(settings.spool_dir)
        journal = GroupCommitJournal(
            engine,
            spool,
            settings.journal_budget_seconds,
            limit=RowLimit(settings.max_body_bytes, engine.dialect.name),
            outbox=runtime.outbox(),  # each notification's notification.received, for the configured sinks
        )
        journal.start()
        app.state.settings = settings
        app.state.engine = engine
        app.state.spool = spool
        app.state.journal = journal
        app.state.intake = Intake(settings, journal)
        app.state.projector_status = runtime.projector_status
        warn_if_unsigned(settings)
        warn_if_exposed(settings)
        report_unusable_spool(spool)
        jobs = runtime.start_jobs(runtime.WEB_WORKER_JOBS, runtime.WebWorker(engine, spool, journal))
        try:
            yield
        finally:
            await journal.close()
            app.state.intake.close()
            await runtime.stop_jobs(jobs)
            await engine.dispose()

    app = FastAPI(title="mps-callback", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    _serve_docs_offline(app)
    for router in (task_routes.router, subtitle_routes.router, notification_routes.router, delivery_routes.router):
        app.include_router(router, dependencies=[Depends(require_api_token)])
    app.include_router(ops.router)
    ui_routes.mount(app)
    for error_class in DATABASE_ERRORS:  # the query API while the database is down: JSON 503, not a plain-text 500
        app.add_exception_handler(error_class, database_error)
    app.openapi = lambda: _openapi_with_callback(app)  # type: ignore[method-assign]
    return CallbackDoor(app)


#: Swagger UI as shipped in the package (see api/static/swagger-ui/README.md): FastAPI's default
#: /docs loads it from a CDN, which a receiver reachable only by MPS often cannot reach.
SWAGGER_UI_DIR = Path(__file__).parent / "api" / "static" / "swagger-ui"
DOCS_ASSETS = "/docs/assets"


def _serve_docs_offline(app: FastAPI) -> None:
    """``/docs`` with every asset served from the package: no request leaves the network."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=SWAGGER_UI_DIR), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")  # behind a proxy that strips a prefix
        return get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"),
            title=f"{app.title} API",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from validator.swagger.io
        )


def _openapi_with_callback(app: FastAPI) -> dict:  # type: ignore[type-arg]
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        schema["paths"] = {**intake_http.OPENAPI_PATHS, **schema["paths"]}
        app.openapi_schema = schema
    return app.openapi_schema


def warn_if_unsigned(settings: Settings) -> None:
    if not settings.notify_keys:
        log.warning(
            "MPS_NOTIFY_KEYS is empty: notifications are accepted WITHOUT signature checks; "
            "anyone who can reach this URL can post one. Set the NotifyKey you gave MPS."
        )


#: What is open to anyone who reaches a non-loopback address when a token is not set.
EXPOSED_WITHOUT = {
    "url_token": "MPS_URL_TOKEN is empty while listening on {host}: anyone who reaches it can post bodies of up "
    "to MPS_MAX_BODY_BYTES that are decoded before the Sign is checked. Set MPS_URL_TOKEN and add "
    "?token= to the NotifyUrl.",
    "api_token": "MPS_API_TOKEN is empty while listening on {host}: the query API (/v1/tasks, /v1/notifications, "
    "/v1/deliveries) and the dashboard (/ui/, with its retry and reproject buttons) are open to anyone who "
    "reaches it. Set MPS_API_TOKEN.",
}


def warn_if_exposed(settings: Settings) -> None:
    """Warn at start for each token left empty while serving beyond loopback (0.0.0.0 by default)."""
    if _is_loopback(settings.host):
        return
    for name, message in EXPOSED_WITHOUT.items():
        if not getattr(settings, name).get_secret_value():
            log.warning(message.format(host=settings.host))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


def report_unusable_spool(spool: Spool) -> None:
    """An unusable spool is found at start, not at the first database outage."""
    if problem := spool.problem():
        log.error(
            "MPS_SPOOL_DIR is not usable: notifications get 503 while the database is away",
            extra={"spool_dir": str(spool.directory), "error": problem},
        )
