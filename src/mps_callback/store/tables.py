"""The tables. The journal (``notifications``) is the source of truth; the rest derive from it."""

from __future__ import annotations

import sqlalchemy as sa

from mps_callback.store.types import BigId, Json, LongText, UtcDateTime

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
    sa.Column("task_id", sa.String(255)),
    sa.Column("session_id", sa.String(255)),
    sa.Column("session_context", LongText),
    sa.Column("body", Json, nullable=False, comment="the notification, secrets redacted"),
    sa.Column("signature", sa.String(16), nullable=False, comment="verified, unverified or unsigned"),
    sa.Column("channel", sa.String(32), nullable=False, comment="front door: http, ..."),
    sa.Column("wrapper", sa.String(32), nullable=False, comment="none, cmq or api-response"),
    sa.Column("message_id", sa.String(255), comment="CMQ msgId or API RequestId"),
    sa.Column("delivery", Json, nullable=False, comment="remote address, headers minus credentials, envelope"),
    sa.Column("dedupe_key", sa.String(64), nullable=False, unique=True),
    sa.Column("batch_id", sa.String(32), nullable=False, comment="the group commit that wrote the row"),
    sa.Index(None, "task_id", "id"),
    sa.Index(None, "received_at"),
)
