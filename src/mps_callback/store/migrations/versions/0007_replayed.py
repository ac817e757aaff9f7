"""``notifications.replayed``: a notification pending again because ``reproject`` rebuilt its task.

It was projected (and its task's events announced) before; projecting it again rebuilds the
task's rows without announcing anything a second time (store/outbox.py). The default, false,
is right for every existing row: nothing is being rebuilt while the migration runs.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa

from mps_callback.store import guarded

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    guarded.add_columns(
        "notifications",
        sa.Column(
            "replayed",
            sa.Boolean,
            nullable=False,
            server_default=sa.false(),
            comment="pending again after reproject: projected without announcing its task's events again",
        ),
    )


def downgrade() -> None:
    guarded.drop_columns("notifications", ("replayed",))
