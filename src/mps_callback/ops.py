"""Liveness, readiness and metrics, for load balancers, orchestrators and Prometheus."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from mps_callback import metrics
from mps_callback.api.deps import EngineDep, JournalDep, ProjectorStatus, ProjectorStatusDep, SpoolDep
from mps_callback.journal.group_commit import GroupCommitJournal
from mps_callback.journal.spool import Spool
from mps_callback.project.projector import projection_health
from mps_callback.store.deliveries import measure as delivery_standing
from mps_callback.store.errors import describe, probe_write

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Whether notifications are journaled now, and what waits or failed")
async def readyz(
    engine: EngineDep, spool: SpoolDep, journal: JournalDep, projector_status: ProjectorStatusDep
) -> Response:
    """503 only when the database does not take writes (notifications then go to the spool);
    ``degraded`` (200) when intake works but something needs an operator: records waiting
    in the spool or quarantined, notifications whose projection was given up, no projector,
    or a sink with dead deliveries (every attempt failed: an operator must fix and retry them).
    ``deliveries`` ({sink: {backlog, dead, oldest_pending_seconds}}) appears when any sink owes
    something: pending deliveries due now, the age of the oldest pending one, and dead ones.
    ``doors`` ({door: {state, age_seconds, error}}) appears when serve's background process runs
    queue doors; a failing door, or one that has not finished a round for two minutes, is a problem."""
    status_code, body = await readiness(engine, spool, journal, projector_status)
    return JSONResponse(body, status_code=status_code)


async def readiness(
    engine: AsyncEngine, spool: Spool, journal: GroupCommitJournal, projector_status: ProjectorStatus
) -> tuple[int, dict[str, Any]]:
    """``/readyz``'s status code and body; the dashboard's health page shows the same figures."""
    health = spool_health(spool)
    body: dict[str, Any] = {
        "status": "ready",
        "problems": [],
        "database": "ok",
        "spool_depth": health["depth"],
        "spool": health,
    }
    spool_problem = spool.problem()  # unusable, notifications would get 503 in the next outage
    body["spool"]["writable"] = spool_problem is None
    try:
        if failure := journal.recent_failure():  # a write failed just now: a full disk passes the probe
            raise JournalDown(failure)
        await probe_write(engine)
        body["projection"] = await projection_health(engine)
        if deliveries := await delivery_standing(engine):
            body["deliveries"] = deliveries
    except Exception as error:
        body.update(status="unavailable", database=describe(error))
        body["problems"].append("the database does not take writes: notifications go to the spool")
        return 503, body
    status = dict(projector_status())
    if doors := status.pop("doors", None):
        body["doors"] = doors
    body["projection"]["projector"] = status
    body["problems"] = _problems(body)
    if spool_problem:
        body["problems"].append(
            f"MPS_SPOOL_DIR {spool.directory} is not usable ({spool_problem}): "
            "notifications would get 503 while the database is away"
        )
    if body["problems"]:
        body["status"] = "degraded"
    return 200, body


#: Projection lag beyond which /readyz says degraded: a healthy projector keeps it around a second.
LAG_WARNING_SECONDS = 60.0


class JournalDown(Exception):
    """The journal's last write failed: the database counts as down until a write goes in."""


def spool_health(spool: Spool) -> dict[str, Any]:
    """Depth, oldest age and quarantine count, also set as gauges for Prometheus."""
    health = {
        "depth": spool.depth(),
        "oldest_seconds": round(spool.oldest_seconds(), 3),
        "quarantined": spool.quarantined(),
    }
    metrics.SPOOL_DEPTH.set(health["depth"])
    metrics.SPOOL_OLDEST_SECONDS.set(health["oldest_seconds"])
    metrics.SPOOL_QUARANTINE_DEPTH.set(health["quarantined"])
    return health


def _problems(body: dict[str, Any]) -> list[str]:
    spool, projection = body["spool"], body["projection"]
    checks = [
        (spool["depth"] > 0, f"{spool['depth']} notifications wait in the spool"),
        (
            spool["quarantined"] > 0,
            f"{spool['quarantined']} spooled records are quarantined: "
            "see spool/quarantine, then `mps-callback spool requeue`",
        ),
        (
            projection["failed"] > 0,
            f"{projection['failed']} notifications failed to project: "
            "see GET /v1/notifications/{id}, then `mps-callback reproject --failed`",
        ),
        (projection["projector"].get("projector") == "down", "the projector is not running"),
        (
            projection["lag_seconds"] > LAG_WARNING_SECONDS,
            f"projection lags {projection['lag_seconds']:.0f} s behind: is the projector stuck or refused writes?",
        ),
    ]
    checks += [
        (
            True,
            f"sink {sink} has {standing['dead']} dead deliveries: "
            f"see GET /v1/deliveries?sink={sink}&status=dead, then `mps-callback deliveries retry --sink {sink}`",
        )
        for sink, standing in body.get("deliveries", {}).items()
        if standing["dead"]
    ]
    checks += [
        (True, problem) for door, state in body.get("doors", {}).items() if (problem := _door_problem(door, state))
    ]
    return [message for failing, message in checks if failing]


#: A queue door that has not finished a round for this long is stuck (a long poll lasts 30 s at most).
DOOR_STALE_SECONDS = 120.0


def _door_problem(door: str, state: dict[str, Any]) -> str | None:
    if state.get("state") == "failing":
        return f"queue door {door} fails: {state.get('error')}; its messages wait in the queue"
    age = state.get("age_seconds")
    if age is None or age > DOOR_STALE_SECONDS:
        return f"queue door {door} has not polled for {age or '?'} s: is the background process stuck?"
    return None


@router.get("/metrics", summary="Prometheus metrics")
async def prometheus() -> Response:
    return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")
