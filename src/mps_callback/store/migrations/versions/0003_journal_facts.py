"""Journal facts the projector and the drain need: the API confirmation beside the signature
verdict (two facts, no longer one overwritten column), the stored body's size (projector
batches bounded in bytes), and when a notification's projection was given up on (parked).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from mps_callback.store.types import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("confirmation", sa.String(16),
                                   comment="MPS_VERIFY_WITH_API: confirmed or unconfirmed; NULL: not asked"))
        batch.add_column(sa.Column("body_bytes", sa.Integer, nullable=False, server_default="0",
                                   comment="size of the stored body as JSON"))
        batch.add_column(sa.Column("projection_failed_at", UtcDateTime(),
                                   comment="projection given up after its attempts; reproject --failed retries"))
    # Before 0003 the API's verdict overwrote the signature's: the signature's is lost for those rows.
    op.execute("UPDATE notifications SET confirmation = signature, signature = 'unknown' "
               "WHERE signature IN ('confirmed', 'unconfirmed')")


def downgrade() -> None:
    op.execute("UPDATE notifications SET signature = confirmation WHERE confirmation IS NOT NULL")
    with op.batch_alter_table("notifications") as batch:
        for column in ("projection_failed_at", "body_bytes", "confirmation"):
            batch.drop_column(column)
