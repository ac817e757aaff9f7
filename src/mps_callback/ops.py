"""Liveness, readiness and metrics, for load balancers, orchestrators and Prometheus."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from mps_callback import metrics

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database answers; how many notifications wait in the spool")
async def readyz(request: Request) -> Response:
    depth = request.app.state.spool.depth()
    try:
        async with request.app.state.engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))
    except Exception as error:
        body = {"status": "unavailable", "database": type(error).__name__, "spool_depth": depth}
        return JSONResponse(body, status_code=503)
    return JSONResponse({"status": "ready", "database": "ok", "spool_depth": depth})


@router.get("/metrics", summary="Prometheus metrics")
async def prometheus() -> Response:
    return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")
