"""The outbox: one ``deliveries`` row per event and sink, written in the transaction that caused
the event, its attempts in ``delivery_attempts``, and the per-task event sequence on ``tasks``.

Every step is guarded (``mps_callback.store.guarded``): safe to run again after a failure part-way.

Revision ID: 0006
Revises: 0005
"""

import importlib.util
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa

from mps_callback.store import guarded
from mps_callback.store.types import BigId, Identifier, Json, UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    guarded.add_columns(
        "tasks",
        sa.Column(
            "event_sequence",
            sa.BigInteger,
            nullable=False,
            server_default="0",
            comment="the sequence of the task's last outbox event (task.*): consumers drop stale updates by it",
        ),
    )
    guarded.create_table(
        "deliveries",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("event_id", Identifier(36), nullable=False, comment="evt_ + 32 hex: the idempotency key sinks carry"),
        sa.Column("sink", sa.String(64), nullable=False, comment="the [[sink]] name in MPS_FORWARD_CONFIG"),
        sa.Column(
            "event", sa.String(32), nullable=False, comment="notification.received, task.updated/finished/failed"
        ),
        sa.Column("task_id", Identifier(255)),
        sa.Column("kind", sa.String(8), comment="vod or live; NULL: a notification of no known shape"),
        sa.Column("mps_type", sa.String(128), comment="MPS's EventType (vod) or NotificationType (live)"),
        sa.Column(
            "sequence", sa.BigInteger, nullable=False, comment="per task for task.*; the notification id otherwise"
        ),
        sa.Column("notification_id", sa.BigInteger, comment="the journal row that caused the event"),
        sa.Column(
            "data", Json, comment="task.*: the task as GET /v1/tasks/{id} showed it; NULL: read from the journal"
        ),
        sa.Column("status", sa.String(16), nullable=False, comment="pending, delivered or dead"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=False, comment="due then; a forwarder's claim pushes it"),
        sa.Column("last_error", sa.String(512), comment="the last failed attempt's reason, credential-free"),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("delivered_at", UtcDateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.UniqueConstraint("event_id", "sink", name="uq_deliveries_event_id_sink"),
    )
    guarded.create_index("ix_deliveries_status_next_attempt_at", "deliveries", ["status", "next_attempt_at"])
    guarded.create_index("ix_deliveries_task_id_id", "deliveries", ["task_id", "id"])
    guarded.create_index("ix_deliveries_created_at", "deliveries", ["created_at"])
    guarded.create_table(
        "delivery_attempts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", sa.BigInteger, nullable=False),
        sa.Column("attempted_at", UtcDateTime(), nullable=False),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False, comment="delivered, retry or disable (the sink's Outcome)"),
        sa.Column("status_code", sa.Integer, comment="the HTTP status, when the sink said one"),
        sa.Column("error", sa.String(512), comment="credential-free"),
        sa.PrimaryKeyConstraint("id", name="pk_delivery_attempts"),
    )
    guarded.create_index("ix_delivery_attempts_delivery_id_id", "delivery_attempts", ["delivery_id", "id"])


def downgrade() -> None:
    guarded.drop_table("delivery_attempts")
    guarded.drop_table("deliveries")
    if guarded.has_column("tasks", "event_sequence"):
        # SQLite drops a column by copying the table, which a view over it forbids: the view
        # goes while the column does, and 0005 puts it back as it was.
        view = _revision("0005_failed_in_view.py")
        guarded.drop_view(view._projections().VIEW)
        guarded.drop_columns("tasks", ("event_sequence",))
        view.upgrade()


def _revision(file: str) -> ModuleType:
    """Another revision's module (they are files, not an importable package)."""
    path = Path(__file__).with_name(file)
    spec = importlib.util.spec_from_file_location(f"mps_callback_migration_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
