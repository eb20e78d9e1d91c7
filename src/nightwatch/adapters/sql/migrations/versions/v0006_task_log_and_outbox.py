"""0006: the `outbox` (events for webhooks and log capture, written by `apply`) and `task_log` (the
kept tail of each finished attempt's output).

Both are new tables, so nothing existing changes; a table already there (made from a newer
`schema.sql`) is left as it is.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0006"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

_MYSQL = ("mysql", "mariadb")


def _datetime() -> sa.types.TypeEngine[datetime]:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), *_MYSQL)


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    present = set(sa.inspect(op.get_bind()).get_table_names())
    if "outbox" not in present:
        op.create_table(
            "outbox",
            sa.Column("id", _id(), primary_key=True, autoincrement=True),
            sa.Column("task_id", sa.BigInteger(), nullable=False),
            sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"),
            sa.Column("event", sa.String(16), nullable=False),
            sa.Column("message", sa.Text(), nullable=True),
            sa.Column("created_at", _datetime(), nullable=False, server_default=sa.func.current_timestamp()),
            sa.Column("state", sa.String(16), nullable=False, server_default="pending"),
            sa.Column("tries", sa.Integer(), nullable=False, server_default="0"),
            sa.Column("next_attempt_at", _datetime(), nullable=True),
            sa.Column("delivered_to", sa.Text(), nullable=True),
            sa.Column("last_error", sa.Text(), nullable=True),
            sa.Column("log_pending", sa.Boolean(create_constraint=False), nullable=False, server_default="0"),
            mysql_engine="InnoDB",
            mysql_charset="utf8mb4",
        )
        op.create_index("ix_outbox_state_id", "outbox", ["state", "id"])
        op.create_index("ix_outbox_task_id_id", "outbox", ["task_id", "id"])
        op.create_index("ix_outbox_log_pending_id", "outbox", ["log_pending", "id"])
    if "task_log" not in present:
        op.create_table(
            "task_log",
            sa.Column("task_id", sa.BigInteger(), primary_key=True, autoincrement=False),
            sa.Column("attempt", sa.Integer(), primary_key=True, autoincrement=False),
            sa.Column("output", sa.Text().with_variant(mysql.MEDIUMTEXT(), *_MYSQL), nullable=True),
            sa.Column("truncated", sa.Boolean(create_constraint=False), nullable=False, server_default="0"),
            sa.Column("captured_at", _datetime(), nullable=False, server_default=sa.func.current_timestamp()),
            mysql_engine="InnoDB",
            mysql_charset="utf8mb4",
        )


def downgrade() -> None:
    op.drop_table("task_log")
    op.drop_table("outbox")
