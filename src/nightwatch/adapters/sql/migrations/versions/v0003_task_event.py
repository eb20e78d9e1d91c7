"""0003: the `task_event` table (a task's history) and its (task_id, id) index.

One row per applied status change, written in the same transaction as the change; the CLI's `show`,
the REST API's `/tasks/{id}/events` and the web detail view read a task's rows by the index.
Idempotent: a table already there (made from a newer `schema.sql`) is left as it is.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_MYSQL = ("mysql", "mariadb")
INDEX = "ix_task_event_task_id_id"


def _datetime() -> sa.types.TypeEngine[datetime]:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), *_MYSQL)


def upgrade() -> None:
    if "task_event" not in set(sa.inspect(op.get_bind()).get_table_names()):
        op.create_table(
            "task_event",
            sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
            sa.Column("task_id", sa.BigInteger(), nullable=False),
            sa.Column("at", _datetime(), nullable=False),
            sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"),
            sa.Column("from_status", sa.String(45), nullable=True),
            sa.Column("to_status", sa.String(45), nullable=False),
            sa.Column("job_name", sa.String(253), nullable=True),
            sa.Column("failure_class", sa.String(32), nullable=False, server_default=""),
            sa.Column("reason", sa.String(128), nullable=False, server_default=""),
            sa.Column("message", sa.Text(), nullable=True),
            sa.Column("epoch", sa.BigInteger(), nullable=True),
            mysql_engine="InnoDB",
            mysql_charset="utf8mb4",
        )
    if INDEX not in {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("task_event")}:
        op.create_index(INDEX, "task_event", ["task_id", "id"])


def downgrade() -> None:
    op.drop_table("task_event")
