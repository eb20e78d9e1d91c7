"""0005: `priority` and `queue` on `task`, the indexes dispatch's queue-aware reads use, and the
`queue_state` table (paused queues, shared by every replica).

`priority` defaults to 0, so rows written by the original system or by hand keep their order (id).
`queue` is NULL until dispatch launches a task (it then names the queue the task was admitted under).
Idempotent like 0002: a column, index or table already there (made from a newer `schema.sql`) is
left as it is.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0005"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

_MYSQL = ("mysql", "mariadb")
INDEXES = {
    "ix_task_status_next_attempt_at_priority_id": ["status", "next_attempt_at", "priority", "id"],
    "ix_task_status_next_attempt_at_user_id_id": ["status", "next_attempt_at", "user_id", "id"],
    "ix_task_status_queue_user_id": ["status", "queue", "user_id"],
}


def _datetime() -> sa.types.TypeEngine[datetime]:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), *_MYSQL)


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    present = {c["name"] for c in inspector.get_columns("task")}
    columns: list[sa.Column[object]] = [
        sa.Column("priority", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("queue", sa.String(63), nullable=True),
    ]
    missing = [c for c in columns if c.name not in present]
    if missing:
        with op.batch_alter_table("task") as batch:
            for column in missing:
                batch.add_column(column)
    indexes = {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("task")}
    for name, cols in INDEXES.items():
        if name not in indexes:
            op.create_index(name, "task", cols)
    if not sa.inspect(op.get_bind()).has_table("queue_state"):
        op.create_table(
            "queue_state",
            sa.Column("name", sa.String(63), primary_key=True),
            sa.Column("paused", sa.Boolean(create_constraint=False), nullable=False, server_default="0"),
            sa.Column("updated_at", _datetime(), nullable=False, server_default=sa.func.current_timestamp()),
            mysql_engine="InnoDB",
            mysql_charset="utf8mb4",
        )


def downgrade() -> None:
    op.drop_table("queue_state")
    for name in INDEXES:
        op.drop_index(name, "task")
    with op.batch_alter_table("task") as batch:
        for name in ("queue", "priority"):
            batch.drop_column(name)
