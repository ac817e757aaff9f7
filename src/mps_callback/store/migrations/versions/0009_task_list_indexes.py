"""Indexes for the dashboard's task list at a million tasks: every filter is a range scan in list order.

The list reads tasks newest first (``first_received_at DESC, task_id DESC``) under a filter.
With the filter's column leading and the list's order after it, a page and a bounded status
count read only the rows they give out; ``session_id`` serves the exact TaskId/SessionId search
(TaskId is the primary key), ``last_received_at`` the live view's "anything new?" (a MAX), and
the subtasks' ``(group_name, task_id)`` the type filter's live half (live tasks that received a
NotificationType), which otherwise reads every subtask.

Every step is guarded (``mps_callback.store.guarded``): safe to run again after a failure part-way.

Revision ID: 0009
Revises: 0008
"""

from mps_callback.store import guarded

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

#: Name, table and columns of each index, as ``store/tables.py`` names them.
INDEXES = {
    "ix_tasks_status_first_received_at_task_id": ("tasks", ["status", "first_received_at", "task_id"]),
    "ix_tasks_failed_first_received_at_task_id": ("tasks", ["failed", "first_received_at", "task_id"]),
    "ix_tasks_kind_first_received_at_task_id": ("tasks", ["kind", "first_received_at", "task_id"]),
    "ix_tasks_event_type_first_received_at_task_id": ("tasks", ["event_type", "first_received_at", "task_id"]),
    "ix_tasks_session_id": ("tasks", ["session_id"]),
    "ix_tasks_last_received_at": ("tasks", ["last_received_at"]),
    "ix_subtasks_group_name_task_id": ("subtasks", ["group_name", "task_id"]),
}


def upgrade() -> None:
    for name, (table, columns) in INDEXES.items():
        guarded.create_index(name, table, columns)


def downgrade() -> None:
    for name, (table, _) in INDEXES.items():
        guarded.drop_index(name, table)
