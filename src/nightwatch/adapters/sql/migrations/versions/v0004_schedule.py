"""0004: the `schedule` table, and `schedule_id` / `slot_at` on `task` with their unique key.

A slot's task carries the schedule's id and the slot's instant; `uq_task_schedule_id_slot_at`
makes a second insert for the same slot fail, whoever tries (another leader, a restart), which is
what makes a slot fire at most once. Both columns are NULL for submitted tasks, and NULLs never
collide in a unique key on MySQL/MariaDB, PostgreSQL or SQLite. Idempotent like 0002: whatever is
already there (a table made from a newer `schema.sql`) is left as it is.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_MYSQL = ("mysql", "mariadb")
UNIQUE = "uq_task_schedule_id_slot_at"


def _datetime() -> sa.types.TypeEngine[datetime]:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), *_MYSQL)


def _now(dialect: str) -> sa.TextClause | sa.sql.functions.current_timestamp:
    return sa.text("CURRENT_TIMESTAMP(6)") if dialect in _MYSQL else sa.func.current_timestamp()


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    inspector = sa.inspect(bind)
    present = {c["name"] for c in inspector.get_columns("task")}
    keys = {u["name"] for u in inspector.get_unique_constraints("task")} | {
        i["name"] for i in inspector.get_indexes("task")
    }
    columns: list[sa.Column[object]] = [
        sa.Column("schedule_id", sa.BigInteger(), nullable=True),
        sa.Column("slot_at", _datetime(), nullable=True),
    ]
    missing = [c for c in columns if c.name not in present]
    if missing or UNIQUE not in keys:
        with op.batch_alter_table("task") as batch:
            for column in missing:
                batch.add_column(column)
            if UNIQUE not in keys:
                batch.create_unique_constraint(UNIQUE, ["schedule_id", "slot_at"])
    if "schedule" in inspector.get_table_names():
        return
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "schedule",
        sa.Column("id", big_id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(45), nullable=False),
        sa.Column("namespace", sa.String(45), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("info", sa.Text().with_variant(mysql.MEDIUMTEXT(), *_MYSQL), nullable=False),
        sa.Column("cron", sa.String(255), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"),
        sa.Column("concurrency", sa.String(16), nullable=False, server_default="Allow"),
        sa.Column("starting_deadline_seconds", sa.BigInteger(), nullable=True),
        sa.Column("catch_up", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("keep", sa.Integer(), nullable=False, server_default="10"),
        sa.Column("suspended", sa.Boolean(create_constraint=False), nullable=False, server_default="0"),
        sa.Column("version", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("created_at", _datetime(), nullable=False, server_default=_now(dialect)),
        sa.Column("updated_at", _datetime(), nullable=False, server_default=_now(dialect)),
        sa.Column("last_slot_at", _datetime(), nullable=False, server_default=_now(dialect)),
        sa.Column("last_fired_at", _datetime(), nullable=True),
        sa.Column("fired", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("missed", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("skipped", sa.BigInteger(), nullable=False, server_default="0"),
        sa.UniqueConstraint("name", "namespace", name="uq_schedule_name_namespace"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_schedule_user_id_id", "schedule", ["user_id", "id"])


def downgrade() -> None:
    op.drop_table("schedule")
    with op.batch_alter_table("task") as batch:
        batch.drop_constraint(UNIQUE, type_="unique")
        batch.drop_column("slot_at")
        batch.drop_column("schedule_id")
