"""The tables. The journal (``notifications``) is the source of truth; the rest derive from it."""

from __future__ import annotations

import sqlalchemy as sa

from mps_callback.store.types import BigId, Identifier, Json, LongText, UtcDateTime

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("kind", sa.String(8), nullable=False, comment="vod (EventType) or live (NotificationType)"),
    sa.Column("event_type", sa.String(128)),
    sa.Column("notification_type", sa.String(128)),
    sa.Column("task_id", Identifier(255)),
    sa.Column("session_id", Identifier(255)),
    sa.Column("session_context", LongText),
    sa.Column("body", Json, nullable=False, comment="the notification, secrets redacted"),
    sa.Column("signature", sa.String(16), nullable=False, comment="verified, unverified or unsigned"),
    sa.Column("confirmation", sa.String(16), comment="MPS_VERIFY_WITH_API: confirmed or unconfirmed; NULL: not asked"),
    sa.Column("channel", sa.String(32), nullable=False, comment="front door: http, ..."),
    sa.Column("wrapper", sa.String(32), nullable=False, comment="none, cmq or api-response"),
    sa.Column("message_id", Identifier(255), comment="CMQ msgId or API RequestId"),
    sa.Column("delivery", Json, nullable=False, comment="remote address, headers minus credentials, envelope"),
    sa.Column("dedupe_key", Identifier(64), nullable=False, unique=True),
    sa.Column("batch_id", Identifier(32), nullable=False, comment="the group commit that wrote the row"),
    sa.Column("projected_at", UtcDateTime(), comment="when the projector took it in; NULL: pending"),
    sa.Column("projection_error", sa.Text),
    sa.Column("projection_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UtcDateTime(), comment="a failed projection is retried after this"),
    sa.Column(
        "body_bytes",
        sa.Integer,
        nullable=False,
        server_default="0",
        comment="size of the body as received, in bytes (bounds projector batches)",
    ),
    sa.Column(
        "projection_failed_at",
        UtcDateTime(),
        comment="projection given up after its attempts; reproject --failed retries",
    ),
    sa.Column(
        "replayed",
        sa.Boolean,
        nullable=False,
        server_default=sa.false(),
        comment="pending again after reproject: projected without announcing its task's events again",
    ),
    sa.Index(None, "task_id", "id"),
    sa.Index(None, "received_at"),
    sa.Index(None, "projected_at", "id"),
)

# ---------------------------------------------------------------- projections (rebuildable from the journal)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("task_id", Identifier(255), primary_key=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("event_type", sa.String(128)),
    sa.Column("status", sa.String(32), nullable=False, comment="PROCESSING or FINISH (MPS's task status)"),
    sa.Column("failed", sa.Boolean, nullable=False, comment="a subtask failed, or the task/ProcessEof has an ErrCode"),
    sa.Column("err_code", sa.Integer),
    sa.Column("message", LongText),
    sa.Column("input", Json),
    sa.Column("input_location", LongText, comment="the input as one string: URL, cos://bucket/object, vod://FileId"),
    sa.Column("video_name", LongText),
    sa.Column("media_metadata", Json, comment="MetaData of the input"),
    sa.Column("session_id", Identifier(255)),
    sa.Column("session_context", LongText),
    sa.Column("extra", Json, comment="fields no reader knows yet"),
    sa.Column("first_received_at", UtcDateTime(), nullable=False),
    sa.Column("last_received_at", UtcDateTime(), nullable=False),
    sa.Column("finished_at", UtcDateTime()),
    sa.Column("notification_count", sa.Integer, nullable=False),
    sa.Column(
        "state_key", Identifier(80), nullable=False, comment="rank:dedupe key of the notification the state came from"
    ),
    sa.Column("session_key", Identifier(80), nullable=False, comment="the same for SessionId/SessionContext"),
    sa.Column(
        "event_sequence",
        sa.BigInteger,
        nullable=False,
        server_default="0",
        comment="the sequence of the task's last outbox event (task.*): consumers drop stale updates by it",
    ),
    sa.Index(None, "first_received_at", "task_id"),
    sa.Index(None, "status"),
    # The dashboard's list (0009): each filter, then the list's order, so a filtered page is a
    # short range scan; SessionId for the exact search; last_received_at for "anything new?".
    sa.Index(None, "status", "first_received_at", "task_id"),
    sa.Index(None, "failed", "first_received_at", "task_id"),
    sa.Index(None, "kind", "first_received_at", "task_id"),
    sa.Index(None, "event_type", "first_received_at", "task_id"),
    sa.Index(None, "session_id"),
    sa.Index(None, "last_received_at"),
)

subtasks = sa.Table(
    "subtasks",
    metadata,
    sa.Column("id", Identifier(32), primary_key=True, comment="hash of (task_id, key): stable across reprojection"),
    sa.Column("task_id", Identifier(255), nullable=False),
    sa.Column("key", Identifier(512), nullable=False),
    sa.Column("group_name", sa.String(64), nullable=False),
    sa.Column("family", sa.String(128), nullable=False),
    sa.Column("type", sa.String(128)),
    sa.Column("mode", sa.String(8), nullable=False),
    sa.Column("status", sa.String(32)),
    sa.Column("err_code", sa.Integer),
    sa.Column("err_code_ext", sa.String(255)),
    sa.Column("message", LongText),
    sa.Column("progress", sa.Integer),
    sa.Column("definition", sa.BigInteger),
    sa.Column("begin_process_time", sa.String(64)),
    sa.Column("finish_time", sa.String(64)),
    sa.Column("input", Json),
    sa.Column("output", Json),
    sa.Column("state_key", Identifier(80), nullable=False, comment="rank:dedupe key; a higher one replaces the state"),
    sa.Column("notification_id", sa.BigInteger, nullable=False, comment="the notification the state came from"),
    sa.Index(None, "task_id"),
    sa.Index(None, "group_name", "task_id"),  # the task list's type filter: live tasks that received a type (0009)
)

outputs = sa.Table(
    "outputs",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("task_id", Identifier(255), nullable=False),
    sa.Column("subtask_id", Identifier(32), nullable=False),
    sa.Column("source", Identifier(64), nullable=False, comment="dedupe key of the notification it came from"),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("field", LongText, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("storage", sa.String(16), nullable=False),
    sa.Column("bucket", sa.String(255)),
    sa.Column("region", sa.String(64)),
    sa.Column("path", LongText),
    sa.Column("url", LongText),
    sa.Column("file_id", sa.String(128)),
    sa.Column("role", sa.String(32)),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Index(None, "task_id", "role", "priority"),
    sa.Index(None, "subtask_id"),
)

segments = sa.Table(
    "segments",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("task_id", Identifier(255), nullable=False),
    sa.Column("subtask_id", Identifier(32), nullable=False),
    sa.Column("source", Identifier(64), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("start_s", sa.Double),
    sa.Column("end_s", sa.Double),
    sa.Column("text", LongText),
    sa.Column("translation", LongText),
    sa.Column("title", LongText),
    sa.Column("summary", LongText),
    sa.Column("label", LongText),
    sa.Column("confidence", sa.Double),
    sa.Column("keywords", Json),
    sa.Column("url", LongText),
    sa.Column("extra", Json),
    sa.Index(None, "task_id", "kind", "start_s"),
    sa.Index(None, "subtask_id"),
)

# ---------------------------------------------------------------- the outbox (forwarding; store/outbox.py writes it)

#: Where a delivery stands: waiting for its (next) attempt, done, or given up after its retry schedule.
DELIVERY_STATUSES = ("pending", "delivered", "dead")

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("event_id", Identifier(36), nullable=False, comment="evt_ + 32 hex: the idempotency key sinks carry"),
    sa.Column("sink", sa.String(64), nullable=False, comment="the [[sink]] name in MPS_FORWARD_CONFIG"),
    sa.Column("event", sa.String(32), nullable=False, comment="notification.received, task.updated/finished/failed"),
    sa.Column("task_id", Identifier(255)),
    sa.Column("kind", sa.String(8), comment="vod or live; NULL: a notification of no known shape"),
    sa.Column("mps_type", sa.String(128), comment="MPS's EventType (vod) or NotificationType (live)"),
    sa.Column("sequence", sa.BigInteger, nullable=False, comment="per task for task.*; the notification id otherwise"),
    sa.Column("notification_id", sa.BigInteger, comment="the journal row that caused the event"),
    sa.Column("data", Json, comment="task.*: the task as GET /v1/tasks/{id} showed it; NULL: read from the journal"),
    sa.Column("status", sa.String(16), nullable=False, comment="pending, delivered or dead"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UtcDateTime(), nullable=False, comment="due then; a forwarder's claim pushes it"),
    sa.Column("last_error", sa.String(512), comment="the last failed attempt's reason, credential-free"),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("delivered_at", UtcDateTime()),
    sa.UniqueConstraint("event_id", "sink"),
    sa.Index(None, "status", "next_attempt_at"),
    sa.Index(None, "task_id", "id"),
    sa.Index(None, "created_at"),
)

delivery_attempts = sa.Table(
    "delivery_attempts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.BigInteger, nullable=False),
    sa.Column("attempted_at", UtcDateTime(), nullable=False),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False, comment="delivered, retry or disable (the sink's Outcome)"),
    sa.Column("status_code", sa.Integer, comment="the HTTP status, when the sink said one"),
    sa.Column("error", sa.String(512), comment="credential-free"),
    sa.Index(None, "delivery_id", "id"),
)

# ---------------------------------------------------------------- the receiver's own figures

health_samples = sa.Table(
    "health_samples",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("minute", UtcDateTime(), nullable=False, comment="the minute counted (its start, UTC)"),
    sa.Column("node", sa.String(64), nullable=False, comment="the process that counted (host:pid)"),
    sa.Column("metric", sa.String(64), nullable=False, comment="e.g. notifications, refusals"),
    sa.Column("label", sa.String(64), nullable=False, server_default="", comment="e.g. the outcome or reason"),
    sa.Column("value", sa.Float, nullable=False, comment="the counter's growth in that minute, or a gauge"),
    sa.UniqueConstraint("minute", "node", "metric", "label"),
)

# ---------------------------------------------------------------- not ours

#: The old single-table script's table, renamed by migration 0002; the ``mps_task_result`` view reads it.
LEGACY_TABLE = "mps_task_result_legacy"


def is_ours(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic ``include_name``: schema comparisons (autogenerate, tests) leave the old script's table alone."""
    return not (type_ == "table" and name == LEGACY_TABLE)
