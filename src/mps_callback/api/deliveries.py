"""``/v1/deliveries``: the outbox as an operator sees it, and a retry for what went dead.

Rows name their sink; a sink's URL and secret stay in ``MPS_FORWARD_CONFIG`` and never appear here.
"""

from __future__ import annotations

from typing import Annotated, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Path, Query

from mps_callback.api import cursor as cursors
from mps_callback.api.deps import EngineDep
from mps_callback.api.params import UtcInstant, refuse_nul
from mps_callback.api.schemas import DeliveryAttempt, DeliveryDetail, DeliveryPage, DeliverySummary, RetryResult
from mps_callback.store.deliveries import RETRYABLE, Selection, retry
from mps_callback.store.engine import for_writing
from mps_callback.store.outbox import EventName
from mps_callback.store.tables import deliveries, delivery_attempts
from mps_callback.store.types import INT64

router = APIRouter(prefix="/v1", tags=["forwarding"], dependencies=[Depends(refuse_nul)])

DeliveryStatus = Literal["pending", "delivered", "dead"]
SUMMARY_COLUMNS = [deliveries.c[name] for name in DeliverySummary.model_fields]
DeliveryId = Annotated[int, Path(ge=1, le=INT64)]


@router.get("/deliveries", response_model=DeliveryPage, summary="Deliveries, newest first")
async def list_deliveries(
    engine: EngineDep,
    sink: Annotated[str | None, Query(max_length=64, description="the [[sink]] name")] = None,
    status: Annotated[DeliveryStatus | None, Query(description="pending, delivered or dead")] = None,
    task: Annotated[str | None, Query(max_length=255, description="TaskId")] = None,
    event: Annotated[EventName | None, Query(description="event type")] = None,
    since: Annotated[UtcInstant | None, Query(description="created at or after (ISO 8601; no offset: UTC)")] = None,
    until: Annotated[UtcInstant | None, Query(description="created before (ISO 8601; no offset: UTC)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=cursors.MAX_CURSOR_CHARS, description="next_cursor of the previous page")
    ] = None,
) -> DeliveryPage:
    selection = Selection(sink=sink, status=status, task_id=task, event=event, since=since, until=until)
    query = sa.select(*SUMMARY_COLUMNS).where(*selection.where())
    if cursor is not None:
        (after_id,) = cursors.decode("deliveries", cursor, int)
        query = query.where(deliveries.c.id < after_id)
    query = query.order_by(deliveries.c.id.desc()).limit(limit + 1)  # ids grow with created_at: newest first
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).mappings().all()
    items = [DeliverySummary(**row) for row in rows[:limit]]
    last = items[-1] if len(rows) > limit else None
    return DeliveryPage(items=items, next_cursor=cursors.encode("deliveries", last.id) if last else None)


@router.get("/deliveries/{delivery_id}", response_model=DeliveryDetail, summary="One delivery and its attempts")
async def get_delivery(engine: EngineDep, delivery_id: DeliveryId) -> DeliveryDetail:
    async with engine.connect() as connection:
        row = (
            (await connection.execute(sa.select(*SUMMARY_COLUMNS).where(deliveries.c.id == delivery_id)))
            .mappings()
            .first()
        )
        if row is None:
            raise HTTPException(404, f"no delivery {delivery_id}")
        attempts = (
            (
                await connection.execute(
                    sa.select(*(delivery_attempts.c[name] for name in DeliveryAttempt.model_fields))
                    .where(delivery_attempts.c.delivery_id == delivery_id)
                    .order_by(delivery_attempts.c.id)
                )
            )
            .mappings()
            .all()
        )
    return DeliveryDetail(**row, attempts_made=[DeliveryAttempt(**attempt) for attempt in attempts])


@router.post(
    "/deliveries/{delivery_id}/retry",
    response_model=RetryResult,
    summary="Make a dead or pending delivery due now (attempts kept); 409 if already delivered, 404 if unknown",
)
async def retry_delivery(engine: EngineDep, delivery_id: DeliveryId) -> RetryResult:
    """A delivered one is not sent again: its receiver has it, and a replay under the same event id
    would be dropped by any receiver that deduplicates (``deliveries backfill`` owes new events).
    A pending one a forwarder holds right now may then be sent twice: at least once, as always."""
    async with for_writing(engine).begin() as connection:
        await retry(connection, Selection(ids=[delivery_id]))
        row = (
            await connection.execute(
                sa.select(deliveries.c.id, deliveries.c.status, deliveries.c.next_attempt_at).where(
                    deliveries.c.id == delivery_id
                )
            )
        ).first()
    if row is None:
        raise HTTPException(404, f"no delivery {delivery_id}")
    if row.status not in RETRYABLE:
        raise HTTPException(409, f"delivery {delivery_id} is {row.status}: only pending or dead ones are retried")
    return RetryResult(id=row.id, status=row.status, next_attempt_at=row.next_attempt_at)
