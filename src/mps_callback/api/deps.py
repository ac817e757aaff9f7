"""What the routes need from the running service, as typed FastAPI dependencies.

``app.py``'s lifespan builds the engine, settings, spool and journal and keeps them on the
app's state; a route names what it needs (``engine: EngineDep``) instead of reading that state
itself, so its signature says what it uses and a test can override one with
``app.dependency_overrides``. Each takes only the request: none adds a parameter to the API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from mps_callback.config import Settings
from mps_callback.journal.group_commit import GroupCommitJournal
from mps_callback.journal.spool import Spool

ProjectorStatus = Callable[[], dict[str, Any]]


class _State(Protocol):
    """What app.py's lifespan puts on ``app.state``."""

    engine: AsyncEngine
    settings: Settings
    spool: Spool
    journal: GroupCommitJournal
    projector_status: ProjectorStatus


def _state(request: Request) -> _State:
    state: _State = request.app.state
    return state


def engine(request: Request) -> AsyncEngine:
    return _state(request).engine


def settings(request: Request) -> Settings:
    return _state(request).settings


def spool(request: Request) -> Spool:
    return _state(request).spool


def journal(request: Request) -> GroupCommitJournal:
    return _state(request).journal


def projector_status(request: Request) -> ProjectorStatus:
    """Whether serve's projector is alive (``runtime.projector_status``), as ``/readyz`` reports it."""
    return _state(request).projector_status


EngineDep = Annotated[AsyncEngine, Depends(engine)]
SettingsDep = Annotated[Settings, Depends(settings)]
SpoolDep = Annotated[Spool, Depends(spool)]
JournalDep = Annotated[GroupCommitJournal, Depends(journal)]
ProjectorStatusDep = Annotated[ProjectorStatus, Depends(projector_status)]
