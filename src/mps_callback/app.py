"""Build the FastAPI application from the layers: intake, journal, store, operations."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from mps_callback import __version__, ops
from mps_callback.api import notifications as notification_routes
from mps_callback.api import subtitles as subtitle_routes
from mps_callback.api import tasks as task_routes
from mps_callback.api.auth import require_api_token
from mps_callback.config import Settings
from mps_callback.intake import http as intake_http
from mps_callback.intake.accept import Intake
from mps_callback.journal.group_commit import GroupCommitJournal
from mps_callback.project.projector import Projector
from mps_callback.store.engine import create_engine

log = logging.getLogger("mps_callback")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url.get_secret_value())
        journaled = asyncio.Event()
        journal = GroupCommitJournal(engine, on_commit=journaled.set)
        journal.start()
        projector = asyncio.create_task(Projector(engine, settings.cdn_domains).run_forever(journaled))
        app.state.settings = settings
        app.state.engine = engine
        app.state.intake = Intake(settings, journal)
        warn_if_unsigned(settings)
        try:
            yield
        finally:
            await journal.close()
            projector.cancel()
            await asyncio.gather(projector, return_exceptions=True)
            await engine.dispose()

    app = FastAPI(title="mps-callback", version=__version__, lifespan=lifespan)
    app.include_router(intake_http.router)
    for router in (task_routes.router, subtitle_routes.router, notification_routes.router):
        app.include_router(router, dependencies=[Depends(require_api_token)])
    app.include_router(ops.router)
    return app


def warn_if_unsigned(settings: Settings) -> None:
    if not settings.notify_keys:
        log.warning(
            "MPS_NOTIFY_KEYS is empty: notifications are accepted WITHOUT signature checks; "
            "anyone who can reach this URL can post one. Set the NotifyKey you gave MPS."
        )
