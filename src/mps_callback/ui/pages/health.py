"""``/ui/health``: is the receiver well, and how has it been these last hours.

The current state is ``/readyz``'s (``ops.readiness``: spool, quarantine, projection lag, the
projector, deliveries per sink), rendered, and re-rendered every few seconds by htmx from
``/ui/health/now``. The last hours come from ``health_samples``, which the background process
writes each minute (``store/samples.py``): totals in a table the page shows without JavaScript,
and minute by minute in ``/ui/health/series.json`` for the charts ``static/health.js`` draws.
Nothing needs a Prometheus server.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from mps_callback import ops
from mps_callback.api.deps import EngineDep, JournalDep, ProjectorStatusDep, SettingsDep, SpoolDep
from mps_callback.api.errors import DATABASE_ERRORS
from mps_callback.store import samples
from mps_callback.store.errors import describe
from mps_callback.ui.web import render

router = APIRouter()

#: The windows the page links to; ``hours`` takes any whole number from 1 to MAX_HOURS.
WINDOWS = (1, 6, 24, 48)
DEFAULT_HOURS = 6
MAX_HOURS = int(samples.KEEP.total_seconds() // 3600)

#: How each state of the projector and of the service reads on the page (word, css class).
PROJECTOR_STATES = {
    "running": ("running", "ok"),
    "starting": ("starting", "run"),
    "down": ("down", "bad"),
    "external": ("not run by this serve (MPS_SERVE_BACKGROUND=false)", "muted"),
}
SERVICE_STATES = {"ready": "ok", "degraded": "run", "unavailable": "bad"}


class BadWindow(ValueError):
    """``hours`` is not a whole number of hours the samples cover: answered 400 with this reason."""


def window_of(hours: str | None) -> int:
    """The chart window from the query, ``DEFAULT_HOURS`` when absent."""
    if hours is None:
        return DEFAULT_HOURS
    if not (hours.isascii() and hours.isdigit() and len(hours) <= 3 and 1 <= int(hours) <= MAX_HOURS):
        raise BadWindow(f"hours must be a whole number from 1 to {MAX_HOURS}")
    return int(hours)


def age(seconds: float | None) -> str:
    """Seconds as a person reads them: ``0.4 s``, ``12 s``, ``3 min 5 s``, ``2 h 10 min``."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    for unit, size, smaller, smaller_size in (("d", 86400, "h", 3600), ("h", 3600, "min", 60), ("min", 60, "s", 1)):
        if whole >= size:
            return f"{whole // size} {unit} {(whole % size) // smaller_size} {smaller}"
    return f"{whole} s"


def milliseconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


async def current(
    engine: EngineDep, spool: SpoolDep, journal: JournalDep, projector_status: ProjectorStatusDep
) -> dict[str, Any]:
    """What ``/readyz`` says now, with how the page shows its states."""
    _, state = await ops.readiness(engine, spool, journal, projector_status)
    projector = state.get("projection", {}).get("projector", {}).get("projector")
    return {
        "state": state,
        "state_class": SERVICE_STATES.get(state["status"], "bad"),
        "projector": PROJECTOR_STATES.get(projector or "", (projector or "unknown (database unavailable)", "muted")),
        "now": datetime.now(UTC),
        "age": age,
    }


@router.get("/health", response_class=HTMLResponse)
async def health_page(
    request: Request,
    engine: EngineDep,
    spool: SpoolDep,
    journal: JournalDep,
    projector_status: ProjectorStatusDep,
    hours: str | None = None,
) -> HTMLResponse:
    try:
        window = window_of(hours)
    except BadWindow as error:
        return render(request, "health_error.html", {"reason": str(error)}, 400)
    context = await current(engine, spool, journal, projector_status)
    try:
        context["series"] = await samples.series(engine, datetime.now(UTC), window)
    except DATABASE_ERRORS as error:
        context["series_error"] = describe(error)
    return render(
        request,
        "health.html",
        {**context, "hours": window, "windows": WINDOWS, "ms": milliseconds},
    )


@router.get("/health/now", response_class=HTMLResponse)
async def health_now(
    request: Request, engine: EngineDep, spool: SpoolDep, journal: JournalDep, projector_status: ProjectorStatusDep
) -> HTMLResponse:
    """The current state alone: what htmx swaps in every few seconds."""
    return render(request, "health_now.html", await current(engine, spool, journal, projector_status))


@router.get("/health/series.json")
async def health_series(engine: EngineDep, settings: SettingsDep, hours: str | None = None) -> Response:
    """The last ``hours`` minute by minute, every node added up; zeros where nothing was counted.

    ``journal.mean_ms`` and ``journal.p95_ms`` are null in a minute without commits.
    """
    try:
        window = window_of(hours)
    except BadWindow as error:
        return JSONResponse({"detail": str(error)}, status_code=400)
    found = await samples.series(engine, datetime.now(UTC), window)
    return JSONResponse(
        {
            "hours": window,
            "sample_seconds": settings.health_sample_seconds,
            "minutes": found.minutes,
            "notifications": dict(sorted(found.notifications.items())),
            "refusals": dict(sorted(found.refusals.items())),
            "journal": {"commits": found.commits, "mean_ms": found.commit_mean_ms, "p95_ms": found.commit_p95_ms},
        },
        headers={"Cache-Control": "no-store"},
    )
