"""Journal facts the projector and the drain need: the API confirmation beside the signature
verdict (two facts, no longer one overwritten column), the stored body's size (projector
batches bounded in bytes), and when a notification's projection was given up on (parked).

Every step is guarded (``mps_callback.store.guarded``): safe to run again after a failure
part-way; the UPDATE moves only rows not moved yet.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from mps_callback.store import guarded
from mps_callback.store.types import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    guarded.add_columns(
        "notifications",
        sa.Column(
            "confirmation", sa.String(16), comment="MPS_VERIFY_WITH_API: confirmed or unconfirmed; NULL: not asked"
        ),
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
    )
    # Before 0003 the API's verdict overwrote the signature's: the signature's is lost for those rows.
    op.execute(
        "UPDATE notifications SET confirmation = signature, signature = 'unknown' "
        "WHERE signature IN ('confirmed', 'unconfirmed')"
    )
    _reproject_if_keys_are_old()


#: Projections keep, per task and subtask, the key of the state that won (project/rank.py).
#: Before 0003 the key was ``rank:dedupe key``; now it is ``rank:strength:time:id``. The two
#: do not compare, and the old one cannot be rewritten (a task's row does not say which
#: notification won), so projections built under the old rule are rebuilt from the journal:
#: the projector does it on its own, as after ``reproject``.
#: The new keys begin ``0002:3:`` on tasks (rank) and ``002100:3:`` on subtasks (rank and progress).
NEW_KEY_PATTERNS = {"tasks": "____:_:%", "subtasks": "______:_:%"}


def _reproject_if_keys_are_old() -> None:
    connection = op.get_bind()
    old = [
        connection.execute(sa.text(f"SELECT 1 FROM {table} WHERE state_key NOT LIKE '{pattern}' LIMIT 1")).first()
        for table, pattern in NEW_KEY_PATTERNS.items()
    ]
    if not any(old):
        return
    for table in ("segments", "outputs", "subtasks", "tasks"):
        op.execute(f"DELETE FROM {table}")
    op.execute(
        "UPDATE notifications SET projected_at = NULL, projection_error = NULL, projection_attempts = 0, "
        "next_attempt_at = NULL"
    )


def downgrade() -> None:
    if guarded.has_column("notifications", "confirmation"):
        op.execute("UPDATE notifications SET signature = confirmation WHERE confirmation IS NOT NULL")
    guarded.drop_columns("notifications", ("projection_failed_at", "body_bytes", "confirmation"))
