"""``/v1/notifications/{id}``: one journal row, its redacted body and how it arrived."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Path

from mps_callback.api.deps import EngineDep
from mps_callback.api.params import refuse_nul
from mps_callback.api.schemas import NotificationDetail
from mps_callback.store.tables import notifications
from mps_callback.store.types import INT64

router = APIRouter(prefix="/v1", tags=["query"], dependencies=[Depends(refuse_nul)])


@router.get("/notifications/{notification_id}", response_model=NotificationDetail, summary="One notification as kept")
async def get_notification(engine: EngineDep, notification_id: int = Path(ge=1, le=INT64)) -> NotificationDetail:
    columns = [notifications.c[name] for name in NotificationDetail.model_fields]
    async with engine.connect() as connection:
        row = (
            (await connection.execute(sa.select(*columns).where(notifications.c.id == notification_id)))
            .mappings()
            .first()
        )
    if row is None:
        raise HTTPException(404, f"no notification {notification_id}")
    return NotificationDetail(**row)
