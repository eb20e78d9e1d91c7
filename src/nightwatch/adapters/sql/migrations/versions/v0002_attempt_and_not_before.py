"""0002: `attempt`, `next_attempt_at` (the not-before time) and `run_at` on `task`, and the index
dispatch reads them by.

`next_attempt_at` is NULL for a task that may start at once. Dispatch reads (Normal, NULL) in id
order and (Normal, time <= now) earliest first, both from `ix_task_status_next_attempt_at_id`, so a
tick costs O(batch) however many tasks wait for a later time. Every column has a default, so rows
inserted by the original system or by hand keep working. Idempotent: a column or index already there
(a table made from a newer `schema.sql`) is left as it is.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_MYSQL = ("mysql", "mariadb")
INDEX = "ix_task_status_next_attempt_at_id"


def _datetime() -> sa.types.TypeEngine[datetime]:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), *_MYSQL)


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    present = {c["name"] for c in inspector.get_columns("task")}
    columns: list[sa.Column[object]] = [
        sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("next_attempt_at", _datetime(), nullable=True),
        sa.Column("run_at", _datetime(), nullable=True),
    ]
    missing = [c for c in columns if c.name not in present]
    if missing:
        # Batch mode, so SQLite (whose ALTER is limited) and the others share one code path.
        with op.batch_alter_table("task") as batch:
            for column in missing:
                batch.add_column(column)
    if INDEX not in {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("task")}:
        op.create_index(INDEX, "task", ["status", "next_attempt_at", "id"])


def downgrade() -> None:
    op.drop_index(INDEX, "task")
    with op.batch_alter_table("task") as batch:
        for name in ("run_at", "next_attempt_at", "attempt"):
            batch.drop_column(name)
