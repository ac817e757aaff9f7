"""The journal: one row per distinct notification received.

Every step is guarded (``mps_callback.store.guarded``): safe to run again after a failure part-way.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa

from mps_callback.store import guarded
from mps_callback.store.types import BigId, Json, LongText, UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    guarded.create_table(
        "notifications",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False, comment="vod (EventType) or live (NotificationType)"),
        sa.Column("event_type", sa.String(128)),
        sa.Column("notification_type", sa.String(128)),
        sa.Column("task_id", sa.String(255)),
        sa.Column("session_id", sa.String(255)),
        sa.Column("session_context", LongText),
        sa.Column("body", Json, nullable=False, comment="the notification, secrets redacted"),
        sa.Column("signature", sa.String(16), nullable=False, comment="verified, unverified or unsigned"),
        sa.Column("channel", sa.String(32), nullable=False, comment="front door: http, ..."),
        sa.Column("wrapper", sa.String(32), nullable=False, comment="none, cmq or api-response"),
        sa.Column("message_id", sa.String(255), comment="CMQ msgId or API RequestId"),
        sa.Column("delivery", Json, nullable=False, comment="remote address, headers minus credentials, envelope"),
        sa.Column("dedupe_key", sa.String(64), nullable=False),
        sa.Column("batch_id", sa.String(32), nullable=False, comment="the group commit that wrote the row"),
        sa.PrimaryKeyConstraint("id", name="pk_notifications"),
        sa.UniqueConstraint("dedupe_key", name="uq_notifications_dedupe_key"),
    )
    guarded.create_index("ix_notifications_task_id_id", "notifications", ["task_id", "id"])
    guarded.create_index("ix_notifications_received_at", "notifications", ["received_at"])


def downgrade() -> None:
    guarded.drop_table("notifications")
