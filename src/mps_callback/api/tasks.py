"""``/v1/tasks``: list and filter tasks, one task with all it produced, its segments and history."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Literal

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Query, Request

from mps_callback.api.schemas import (
    NotificationSummary,
    Output,
    Segment,
    SegmentPage,
    Subtask,
    TaskDetail,
    TaskPage,
    TaskSummary,
)
from mps_callback.store.tables import notifications, outputs, segments, subtasks, tasks

router = APIRouter(prefix="/v1", tags=["query"])

SUMMARY_COLUMNS = [tasks.c[name] for name in TaskSummary.model_fields]


@router.get("/tasks", response_model=TaskPage, summary="Tasks, newest first")
async def list_tasks(
    request: Request,
    status: str | None = Query(None, description="PROCESSING, FINISH, or failed (any subtask failed, or an error)"),
    kind: Literal["vod", "live"] | None = None,
    event_type: str | None = Query(None, description="EventType of file tasks: WorkflowTask, ScheduleTask, ..."),
    since: datetime | None = Query(None, description="first notification at or after (ISO 8601)"),
    until: datetime | None = Query(None, description="first notification before (ISO 8601)"),
    q: str | None = Query(None, max_length=200, description="text in TaskId, SessionId, SessionContext or input"),
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
) -> TaskPage:
    query = sa.select(*SUMMARY_COLUMNS)
    if status is not None:
        query = query.where(tasks.c.failed.is_(True) if status.lower() == "failed" else tasks.c.status == status.upper())
    if kind is not None:
        query = query.where(tasks.c.kind == kind)
    if event_type is not None:
        query = query.where(tasks.c.event_type == event_type)
    if since is not None:
        query = query.where(tasks.c.first_received_at >= since)
    if until is not None:
        query = query.where(tasks.c.first_received_at < until)
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        columns = (tasks.c.task_id, tasks.c.session_id, tasks.c.session_context, tasks.c.input_location, tasks.c.video_name)
        query = query.where(sa.or_(*(column.like(pattern, escape="\\") for column in columns)))
    if cursor is not None:
        after_time, after_id = _decode_cursor(cursor)
        query = query.where(
            sa.or_(tasks.c.first_received_at < after_time,
                   sa.and_(tasks.c.first_received_at == after_time, tasks.c.task_id < after_id))
        )
    query = query.order_by(tasks.c.first_received_at.desc(), tasks.c.task_id.desc()).limit(limit + 1)
    async with request.app.state.engine.connect() as connection:
        rows = (await connection.execute(query)).mappings().all()
    items = [dict(row) for row in rows[:limit]]
    next_cursor = _encode_cursor(items[-1]["first_received_at"], items[-1]["task_id"]) if len(rows) > limit else None
    return TaskPage(items=items, next_cursor=next_cursor)


@router.get("/tasks/{task_id}", response_model=TaskDetail, summary="One task: subtasks, outputs with URLs, segment counts")
async def get_task(request: Request, task_id: str) -> TaskDetail:
    async with request.app.state.engine.connect() as connection:
        task = (await connection.execute(sa.select(tasks).where(tasks.c.task_id == task_id))).mappings().first()
        if task is None:
            await _not_found(connection, task_id)
        subtask_rows = (
            await connection.execute(sa.select(subtasks).where(subtasks.c.task_id == task_id).order_by(subtasks.c.key))
        ).mappings().all()
        output_rows = (
            await connection.execute(
                sa.select(outputs, subtasks.c.family)
                .join(subtasks, subtasks.c.id == outputs.c.subtask_id)
                .where(outputs.c.task_id == task_id)
                .order_by(outputs.c.id)
            )
        ).mappings().all()
        counts = await connection.execute(
            sa.select(segments.c.kind, sa.func.count()).where(segments.c.task_id == task_id).group_by(segments.c.kind)
        )
        segment_counts = {kind: count for kind, count in counts}
    return TaskDetail(
        **task,
        subtasks=[Subtask(group=row["group_name"], **row) for row in subtask_rows],
        outputs=[Output(subtask=row["family"], **row) for row in output_rows],
        segment_counts=segment_counts,
    )


@router.get("/tasks/{task_id}/segments", response_model=SegmentPage, summary="Time-ranged items, in time order")
async def list_segments(
    request: Request,
    task_id: str,
    kind: str | None = Query(None, description="subtitle, word, highlight, split, paragraph, review, quality, ..."),
    limit: int = Query(200, ge=1, le=2000),
    offset: int = Query(0, ge=0, le=10_000_000),
) -> SegmentPage:
    query = sa.select(segments).where(segments.c.task_id == task_id)
    if kind is not None:
        query = query.where(segments.c.kind == kind)
    query = query.order_by(segments.c.start_s.is_(None), segments.c.start_s, segments.c.id).limit(limit + 1).offset(offset)
    async with request.app.state.engine.connect() as connection:
        rows = (await connection.execute(query)).mappings().all()
        if not rows and offset == 0:
            exists = await connection.execute(sa.select(tasks.c.task_id).where(tasks.c.task_id == task_id))
            if exists.first() is None:
                await _not_found(connection, task_id)
    items = [Segment(start=row["start_s"], end=row["end_s"], **row) for row in rows[:limit]]
    return SegmentPage(items=items, next_offset=offset + limit if len(rows) > limit else None)


@router.get(
    "/tasks/{task_id}/notifications", response_model=list[NotificationSummary], summary="Every notification, oldest first"
)
async def task_notifications(request: Request, task_id: str) -> list[NotificationSummary]:
    columns = [notifications.c[name] for name in NotificationSummary.model_fields]
    async with request.app.state.engine.connect() as connection:
        rows = (
            await connection.execute(sa.select(*columns).where(notifications.c.task_id == task_id).order_by(notifications.c.id))
        ).mappings().all()
    if not rows:
        raise HTTPException(404, f"no notification received for task {task_id}")
    return [NotificationSummary(**row) for row in rows]


async def _not_found(connection: sa.ext.asyncio.AsyncConnection, task_id: str) -> None:
    """404, saying whether the task is unknown or only not projected yet."""
    pending = await connection.execute(
        sa.select(sa.func.count()).select_from(notifications).where(notifications.c.task_id == task_id)
    )
    if pending.scalar_one():
        raise HTTPException(404, f"task {task_id} has notifications that are not projected yet; retry shortly")
    raise HTTPException(404, f"no task {task_id}")


def _encode_cursor(when: datetime, task_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([when.isoformat(), task_id])).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        when, task_id = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(when), str(task_id)
    except Exception:
        raise HTTPException(400, "cursor is not one this API gave out") from None
