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
        sa.Column("confirmation", sa.String(16), comment="MPS_VERIFY_WITH_API: confirmed or unconfirmed; NULL: not asked"),
        sa.Column("body_bytes", sa.Integer, nullable=False, server_default="0", comment="size of the body as received, in bytes (bounds projector batches)"),
        sa.Column("projection_failed_at", UtcDateTime(),
                  comment="projection given up after its attempts; reproject --failed retries"),
    )
    # Before 0003 the API's verdict overwrote the signature's: the signature's is lost for those rows.
    op.execute("UPDATE notifications SET confirmation = signature, signature = 'unknown' "
               "WHERE signature IN ('confirmed', 'unconfirmed')")


def downgrade() -> None:
    if guarded.has_column("notifications", "confirmation"):
        op.execute("UPDATE notifications SET signature = confirmation WHERE confirmation IS NOT NULL")
    guarded.drop_columns("notifications", ("projection_failed_at", "body_bytes", "confirmation"))
