"""Identifiers compared byte for byte on MariaDB/MySQL.

MariaDB's default collation folds case and ignores trailing spaces, so TaskIds
``CaseTask-abc``, ``casetask-ABC`` and ``CaseTask-abc `` were one task: the later ones never
projected and ``GET /v1/tasks/CASETASK-ABC`` answered with another task. Every identifier and
key column gets the binary NO PAD collation of ``types.identifier_collation``. SQLite and
PostgreSQL compare VARCHAR byte-exactly already: nothing to do there.

One ALTER TABLE per table (MariaDB rebuilds the table for each), only for the columns not
converted yet: safe to run again after a failure part-way.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op
from sqlalchemy.types import TypeEngine

from mps_callback.store import guarded
from mps_callback.store.types import Identifier, identifier_collation

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

#: Each identifier column as it stands (nullability, comment), with its new type.
IDENTIFIERS: dict[str, list[sa.Column[str]]] = {
    "notifications": [
        sa.Column("task_id", Identifier(255)),
        sa.Column("session_id", Identifier(255)),
        sa.Column("message_id", Identifier(255), comment="CMQ msgId or API RequestId"),
        sa.Column("dedupe_key", Identifier(64), nullable=False),
        sa.Column("batch_id", Identifier(32), nullable=False, comment="the group commit that wrote the row"),
    ],
    "tasks": [
        sa.Column("task_id", Identifier(255), nullable=False),
        sa.Column("session_id", Identifier(255)),
        sa.Column(
            "state_key",
            Identifier(80),
            nullable=False,
            comment="rank:dedupe key of the notification the state came from",
        ),
        sa.Column("session_key", Identifier(80), nullable=False, comment="the same for SessionId/SessionContext"),
    ],
    "subtasks": [
        sa.Column("id", Identifier(32), nullable=False, comment="hash of (task_id, key): stable across reprojection"),
        sa.Column("task_id", Identifier(255), nullable=False),
        sa.Column("key", Identifier(512), nullable=False),
        sa.Column(
            "state_key", Identifier(80), nullable=False, comment="rank:dedupe key; a higher one replaces the state"
        ),
    ],
    "outputs": [
        sa.Column("task_id", Identifier(255), nullable=False),
        sa.Column("subtask_id", Identifier(32), nullable=False),
        sa.Column("source", Identifier(64), nullable=False, comment="dedupe key of the notification it came from"),
    ],
    "segments": [
        sa.Column("task_id", Identifier(255), nullable=False),
        sa.Column("subtask_id", Identifier(32), nullable=False),
        sa.Column("source", Identifier(64), nullable=False),
    ],
}


def _on_mysql() -> bool:
    return op.get_bind().dialect.name in ("mysql", "mariadb")


def _length(column: sa.Column[str]) -> int:
    """The declared length of one of the identifier columns above (all are sized strings)."""
    length = getattr(column.type, "length", None)  # sa.String and Identifier both carry it
    if not isinstance(length, int):
        raise TypeError(f"{column.name} is not a sized string")
    return length


def _modify(table: str, columns: list[sa.Column[str]], new_type: Callable[[int], TypeEngine[str]]) -> None:
    """One ``ALTER TABLE`` that gives ``columns`` their ``new_type``, keeping nullability and comment."""
    dialect = op.get_bind().dialect
    changed = [sa.Column(c.name, new_type(_length(c)), nullable=c.nullable, comment=c.comment) for c in columns]
    sa.Table(table, sa.MetaData(), *changed)  # CreateColumn renders the columns of a table
    clauses = ", ".join(f"MODIFY {sa.schema.CreateColumn(column).compile(dialect=dialect)}" for column in changed)
    op.execute(f"ALTER TABLE {table} {clauses}")


def upgrade() -> None:
    if not _on_mysql():
        return
    collation = identifier_collation(op.get_bind().dialect)
    for table, columns in IDENTIFIERS.items():
        current = guarded.column_collations(table)
        pending = [column for column in columns if current[column.name] != collation]
        if pending:
            _modify(table, pending, Identifier)


def downgrade() -> None:
    """Back to the server's default collation: fails where keys now differ only in case or trailing spaces."""
    if not _on_mysql():
        return
    for table, columns in IDENTIFIERS.items():
        _modify(table, columns, sa.String)
