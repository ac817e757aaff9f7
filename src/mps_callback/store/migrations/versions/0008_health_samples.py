"""``health_samples``: the receiver's counters minute by minute, for the dashboard's health charts.

The figures of ``/metrics`` live in the processes that count them and vanish with them; a user
may have no Prometheus to keep them. The background process writes, each minute, how much each
counter grew (per node, so several nodes add up), and the health page charts the last hours.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa

from mps_callback.store import guarded
from mps_callback.store.types import BigId, UtcDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    guarded.create_table(
        "health_samples",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("minute", UtcDateTime(), nullable=False, comment="the minute counted (its start, UTC)"),
        sa.Column("node", sa.String(64), nullable=False, comment="the process that counted (host:pid)"),
        sa.Column("metric", sa.String(64), nullable=False, comment="e.g. notifications, refusals"),
        sa.Column("label", sa.String(64), nullable=False, server_default="", comment="e.g. the outcome or reason"),
        sa.Column("value", sa.Float, nullable=False, comment="the counter's growth in that minute, or a gauge"),
        sa.PrimaryKeyConstraint("id", name="pk_health_samples"),
        sa.UniqueConstraint("minute", "node", "metric", "label", name="uq_health_samples_minute_node_metric_label"),
    )


def downgrade() -> None:
    guarded.drop_table("health_samples")
