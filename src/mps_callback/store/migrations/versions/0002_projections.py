"""Projections: tasks, subtasks, outputs, segments; projection state on the journal; the
``mps_task_result`` view that keeps the old single-table script's readers working.

Users of the old script have a table ``mps_task_result``: it is renamed
``mps_task_result_legacy`` and the view shows its rows too, so readers keep their history.
Every step is guarded (``mps_callback.store.guarded``): safe to run again after a failure part-way.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from mps_callback.store import guarded
from mps_callback.store.types import BigId, Json, LongText, UtcDateTime, identifier_collation

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

VIEW = "mps_task_result"
#: The old script's table, kept under this name once the view takes its place.
LEGACY_TABLE = "mps_task_result_legacy"


def _first_output(column: str, role: str) -> str:
    return (
        f"(SELECT o.{column} FROM outputs o WHERE o.task_id = t.task_id AND o.role = '{role}' "
        "ORDER BY o.priority, o.id LIMIT 1)"
    )


#: The view's columns (the old table's, in its order) and where our tables hold each.
OUR_COLUMNS = {
    "task_id": "t.task_id",
    "status": "t.status",
    "create_time": "t.first_received_at",
    "video_name": "t.video_name",
    "url": _first_output("url", "main"),
    "output_path": _first_output("path", "main"),
    "vtt_url": _first_output("url", "subtitle"),
    "en_vtt": _first_output("url", "translation"),
    "username": "t.session_context",
}


def _select(columns: dict[str, str], source: str) -> str:
    listed = ",\n       ".join(f"{expression} AS {name}" for name, expression in columns.items())
    return f"SELECT {listed}\nFROM {source}"


def _as_text(expression: str, dialect: sa.Dialect) -> str:
    """The value as text: the old table's VARCHAR and our DATETIME unite only as one type on PostgreSQL."""
    if dialect.name in ("mysql", "mariadb"):  # one character set, whatever the old table's was
        return f"CAST({expression} AS CHAR CHARACTER SET utf8mb4)"
    return f"CAST({expression} AS TEXT)"


def _as_identifier(expression: str, dialect: sa.Dialect) -> str:
    """A TaskId as text compared byte-exactly (MariaDB/MySQL: by our identifier collation)."""
    if dialect.name in ("mysql", "mariadb"):
        return f"{_as_text(expression, dialect)} COLLATE {identifier_collation(dialect)}"
    return _as_text(expression, dialect)


def _as_text_columns(columns: dict[str, str], dialect: sa.Dialect) -> dict[str, str]:
    """Every column as text, the TaskId byte-exact: both halves of the UNION then agree on every backend."""
    as_text = {name: _as_text(expression, dialect) for name, expression in columns.items()}
    return {**as_text, "task_id": _as_identifier(columns["task_id"], dialect)}


def _legacy_columns(columns: dict[str, str]) -> dict[str, str] | None:
    """The old table's column for each of ours: NULL where its version of the script had none.

    Scripts in the wild dropped or never had some columns; a view naming a missing one fails
    (MariaDB at CREATE, SQLite at every read). Without ``task_id`` the rows cannot be matched
    to ours, so that table is kept aside but not shown.
    """
    if not guarded.has_column(LEGACY_TABLE, "task_id"):
        return None
    return {name: f"l.{name}" if guarded.has_column(LEGACY_TABLE, name) else "NULL" for name in columns}


def with_legacy_rows(columns: dict[str, str], dialect: sa.Dialect) -> str:
    """The view's SELECT over ``columns``: the old table's rows for tasks we do not have (when it
    was found), then ours; a task in both shows once, as ours."""
    ours = _select(columns, "tasks t")
    found = _legacy_columns(columns) if guarded.has_table(LEGACY_TABLE) else None
    if found is None:
        return ours
    legacy = _as_text_columns(found, dialect)
    return (
        f"{_select(legacy, f'{LEGACY_TABLE} l')}\n"
        f"WHERE NOT EXISTS (SELECT 1 FROM tasks t WHERE t.task_id = {legacy['task_id']})\n"
        "UNION ALL\n"
        f"{_select(_as_text_columns(columns, dialect), 'tasks t')}"
    )


def compatibility_view(dialect: sa.Dialect) -> str:
    """The view's SELECT: our tasks, with the old script's rows when its table was found."""
    return with_legacy_rows(OUR_COLUMNS, dialect)


def upgrade() -> None:
    guarded.add_columns(
        "notifications",
        sa.Column("projected_at", UtcDateTime(), comment="when the projector took it in; NULL: pending"),
        sa.Column("projection_error", sa.Text),
        sa.Column("projection_attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", UtcDateTime(), comment="a failed projection is retried after this"),
    )
    guarded.create_index("ix_notifications_projected_at_id", "notifications", ["projected_at", "id"])

    guarded.create_table(
        "tasks",
        sa.Column("task_id", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("event_type", sa.String(128)),
        sa.Column("status", sa.String(32), nullable=False, comment="PROCESSING or FINISH (MPS's task status)"),
        sa.Column(
            "failed", sa.Boolean, nullable=False, comment="a subtask failed, or the task/ProcessEof has an ErrCode"
        ),
        sa.Column("err_code", sa.Integer),
        sa.Column("message", LongText),
        sa.Column("input", Json),
        sa.Column(
            "input_location", LongText, comment="the input as one string: URL, cos://bucket/object, vod://FileId"
        ),
        sa.Column("video_name", LongText),
        sa.Column("media_metadata", Json, comment="MetaData of the input"),
        sa.Column("session_id", sa.String(255)),
        sa.Column("session_context", LongText),
        sa.Column("extra", Json, comment="fields no reader knows yet"),
        sa.Column("first_received_at", UtcDateTime(), nullable=False),
        sa.Column("last_received_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime()),
        sa.Column("notification_count", sa.Integer, nullable=False),
        sa.Column(
            "state_key",
            sa.String(80),
            nullable=False,
            comment="rank:dedupe key of the notification the state came from",
        ),
        sa.Column("session_key", sa.String(80), nullable=False, comment="the same for SessionId/SessionContext"),
        sa.PrimaryKeyConstraint("task_id", name="pk_tasks"),
    )
    guarded.create_index("ix_tasks_first_received_at_task_id", "tasks", ["first_received_at", "task_id"])
    guarded.create_index("ix_tasks_status", "tasks", ["status"])

    guarded.create_table(
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
        sa.Column(
            "state_key", sa.String(80), nullable=False, comment="rank:dedupe key; a higher one replaces the state"
        ),
        sa.Column("notification_id", sa.BigInteger, nullable=False, comment="the notification the state came from"),
        sa.PrimaryKeyConstraint("id", name="pk_subtasks"),
    )
    guarded.create_index("ix_subtasks_task_id", "subtasks", ["task_id"])

    guarded.create_table(
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
    guarded.create_index("ix_outputs_task_id_role_priority", "outputs", ["task_id", "role", "priority"])
    guarded.create_index("ix_outputs_subtask_id", "outputs", ["subtask_id"])

    guarded.create_table(
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
    guarded.create_index("ix_segments_task_id_kind_start_s", "segments", ["task_id", "kind", "start_s"])
    guarded.create_index("ix_segments_subtask_id", "segments", ["subtask_id"])

    guarded.rename_table(VIEW, LEGACY_TABLE)
    guarded.create_view(VIEW, compatibility_view(op.get_bind().dialect))


def downgrade() -> None:
    guarded.drop_view(VIEW)
    guarded.rename_table(LEGACY_TABLE, VIEW)  # the old script's table back where it was
    for table in ("segments", "outputs", "subtasks", "tasks"):
        guarded.drop_table(table)
    guarded.drop_index("ix_notifications_projected_at_id", "notifications")
    guarded.drop_columns(
        "notifications", ("next_attempt_at", "projection_attempts", "projection_error", "projected_at")
    )
