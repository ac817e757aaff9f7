"""Projections: tasks, subtasks, outputs, segments; projection state on the journal; the
``mps_task_result`` view that keeps the old single-table script's readers working.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from mps_callback.store.types import BigId, Json, LongText, UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _first_output(column: str, role: str) -> str:
    return (
        f"(SELECT o.{column} FROM outputs o WHERE o.task_id = t.task_id AND o.role = '{role}' "
        "ORDER BY o.priority, o.id LIMIT 1)"
    )


COMPATIBILITY_VIEW = f"""
CREATE VIEW mps_task_result AS
SELECT t.task_id AS task_id,
       t.status AS status,
       t.first_received_at AS create_time,
       t.video_name AS video_name,
       {_first_output("url", "main")} AS url,
       {_first_output("path", "main")} AS output_path,
       {_first_output("url", "subtitle")} AS vtt_url,
       {_first_output("url", "translation")} AS en_vtt,
       t.session_context AS username
FROM tasks t
"""


def upgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("projected_at", UtcDateTime(), comment="when the projector took it in; NULL: pending"))
        batch.add_column(sa.Column("projection_error", sa.Text))
        batch.add_column(sa.Column("projection_attempts", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("next_attempt_at", UtcDateTime(), comment="a failed projection is retried after this"))
    op.create_index("ix_notifications_projected_at_id", "notifications", ["projected_at", "id"])

    op.create_table(
        "tasks",
        sa.Column("task_id", sa.String(255), nullable=False),
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
        sa.Column("session_id", sa.String(255)),
        sa.Column("session_context", LongText),
        sa.Column("extra", Json, comment="fields no reader knows yet"),
        sa.Column("first_received_at", UtcDateTime(), nullable=False),
        sa.Column("last_received_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime()),
        sa.Column("notification_count", sa.Integer, nullable=False),
        sa.Column("state_key", sa.String(80), nullable=False, comment="rank:dedupe key of the notification the state came from"),
        sa.Column("session_key", sa.String(80), nullable=False, comment="the same for SessionId/SessionContext"),
        sa.PrimaryKeyConstraint("task_id", name="pk_tasks"),
    )
    op.create_index("ix_tasks_first_received_at_task_id", "tasks", ["first_received_at", "task_id"])
    op.create_index("ix_tasks_status", "tasks", ["status"])

    op.create_table(
        "subtasks",
        sa.Column("id", sa.String(32), nullable=False, comment="hash of (task_id, key): stable across reprojection"),
        sa.Column("task_id", sa.String(255), nullable=False),
        sa.Column("key", sa.String(512), nullable=False),
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
        sa.Column("state_key", sa.String(80), nullable=False, comment="rank:dedupe key; a higher one replaces the state"),
        sa.Column("notification_id", sa.BigInteger, nullable=False, comment="the notification the state came from"),
        sa.PrimaryKeyConstraint("id", name="pk_subtasks"),
    )
    op.create_index("ix_subtasks_task_id", "subtasks", ["task_id"])

    op.create_table(
        "outputs",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.String(255), nullable=False),
        sa.Column("subtask_id", sa.String(32), nullable=False),
        sa.Column("source", sa.String(64), nullable=False, comment="dedupe key of the notification it came from"),
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
        sa.PrimaryKeyConstraint("id", name="pk_outputs"),
    )
    op.create_index("ix_outputs_task_id_role_priority", "outputs", ["task_id", "role", "priority"])
    op.create_index("ix_outputs_subtask_id", "outputs", ["subtask_id"])

    op.create_table(
        "segments",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.String(255), nullable=False),
        sa.Column("subtask_id", sa.String(32), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
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
        sa.PrimaryKeyConstraint("id", name="pk_segments"),
    )
    op.create_index("ix_segments_task_id_kind_start_s", "segments", ["task_id", "kind", "start_s"])
    op.create_index("ix_segments_subtask_id", "segments", ["subtask_id"])

    op.execute(COMPATIBILITY_VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW mps_task_result")
    for table in ("segments", "outputs", "subtasks", "tasks"):
        op.drop_table(table)
    op.drop_index("ix_notifications_projected_at_id", "notifications")
    with op.batch_alter_table("notifications") as batch:
        for column in ("next_attempt_at", "projection_attempts", "projection_error", "projected_at"):
            batch.drop_column(column)
