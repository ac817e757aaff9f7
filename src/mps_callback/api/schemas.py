"""Response shapes of the query API (they are also its OpenAPI documentation)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class TaskSummary(BaseModel):
    task_id: str
    kind: str
    event_type: str | None = Field(description="EventType of a file task; null for live tasks")
    type: str | None = Field(
        description="EventType (file task), or NotificationType of the latest notification (live task)"
    )
    status: str
    failed: bool
    err_code: int | None
    message: str | None
    video_name: str | None
    input_location: str | None
    session_id: str | None
    session_context: str | None
    first_received_at: datetime
    last_received_at: datetime
    finished_at: datetime | None
    notification_count: int


class TaskPage(BaseModel):
    items: list[TaskSummary]
    next_cursor: str | None


class Subtask(BaseModel):
    id: str
    key: str
    group: str
    family: str
    type: str | None
    mode: str
    status: str | None
    err_code: int | None
    err_code_ext: str | None
    message: str | None
    progress: int | None
    definition: int | None
    begin_process_time: str | None
    finish_time: str | None
    input: Any
    output: Any


class Output(BaseModel):
    subtask_id: str
    subtask: str
    field: str
    kind: str
    storage: str
    bucket: str | None
    region: str | None
    path: str | None
    url: str | None
    file_id: str | None
    role: str | None


class TaskDetail(TaskSummary):
    input: Any
    media_metadata: Any
    extra: Any
    subtasks: list[Subtask]
    outputs: list[Output]
    segment_counts: dict[str, int]


class Segment(BaseModel):
    id: int
    subtask_id: str
    kind: str
    start: float | None
    end: float | None
    text: str | None
    translation: str | None
    title: str | None
    summary: str | None
    label: str | None
    confidence: float | None
    keywords: Any
    url: str | None
    extra: Any


class SegmentPage(BaseModel):
    items: list[Segment]
    next_cursor: str | None


class NotificationSummary(BaseModel):
    id: int
    received_at: datetime
    kind: str
    event_type: str | None
    notification_type: str | None
    task_id: str | None
    signature: str
    confirmation: str | None
    channel: str
    wrapper: str
    message_id: str | None
    projected_at: datetime | None
    projection_error: str | None
    projection_attempts: int
    projection_failed_at: datetime | None


class NotificationDetail(NotificationSummary):
    session_id: str | None
    session_context: str | None
    body: Any
    delivery: Any


class NotificationPage(BaseModel):
    items: list[NotificationSummary]
    next_cursor: str | None


class DeliverySummary(BaseModel):
    """One event owed to one sink: the sink by name only (its URL and secret never leave the configuration)."""

    id: int
    event_id: str
    sink: str
    event: str
    task_id: str | None
    kind: str | None
    mps_type: str | None
    sequence: int
    notification_id: int | None
    status: str = Field(description="pending, delivered or dead")
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveryAttempt(BaseModel):
    id: int
    attempted_at: datetime
    duration_ms: int
    outcome: str = Field(description="delivered, retry, disable, or gone (its notification left the journal)")
    status_code: int | None = Field(description="the HTTP status, when the sink said one")
    error: str | None


class DeliveryDetail(DeliverySummary):
    attempts_made: list[DeliveryAttempt] = Field(description="every attempt, oldest first (``attempts`` counts them)")


class DeliveryPage(BaseModel):
    items: list[DeliverySummary]
    next_cursor: str | None


class RetryResult(BaseModel):
    id: int
    status: str
    next_attempt_at: datetime
