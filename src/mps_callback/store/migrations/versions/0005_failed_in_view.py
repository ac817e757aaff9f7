"""The compatibility view ``mps_task_result`` shows a failed task as failed.

The old script's readers only see ``status``: a finished task whose subtask failed (or that
carries an ErrCode, or a SUCCESS subtask with an ErrCode/ErrCodeExt) showed ``FINISH`` like a
good one. It now shows ``FAIL`` once finished; a task still running keeps ``PROCESSING``, so a
reader waiting for the end still waits for it. The legacy rows (``mps_task_result_legacy``)
are shown as they were.

The view is dropped and created again (SQLite has no CREATE OR REPLACE VIEW, PostgreSQL's
cannot change a column's type); both steps are guarded, so a run that stopped between them
(MariaDB commits each DDL statement) completes on the next one.

Revision ID: 0005
Revises: 0004
"""

import importlib.util
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

from mps_callback.store import guarded

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

#: What the view shows in ``status``: MPS's task status, FAIL for a finished task that failed.
FAILED_STATUS = "CASE WHEN t.failed AND t.status = 'FINISH' THEN 'FAIL' ELSE t.status END"


def _projections() -> ModuleType:
    """Revision 0002, where the view's columns and its legacy union are defined."""
    path = Path(__file__).with_name("0002_projections.py")
    spec = importlib.util.spec_from_file_location("mps_callback_migration_0002", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def view(columns: dict[str, str], dialect: sa.Dialect) -> str:
    """The view's SELECT over ``columns``, with the old script's rows when its table is there (as 0002)."""
    select: str = _projections().with_legacy_rows(columns, dialect)
    return select


def _replace(columns: dict[str, str]) -> None:
    base = _projections()
    guarded.drop_view(base.VIEW)
    guarded.create_view(base.VIEW, view(columns, op.get_bind().dialect))


def upgrade() -> None:
    base = _projections()
    _replace({**base.OUR_COLUMNS, "status": FAILED_STATUS})


def downgrade() -> None:
    _replace(_projections().OUR_COLUMNS)
