"""0001: the `task` and `leader_epoch` tables as `schema.sql` has them.

Brings whatever is there to this shape, so it is also the baseline for databases made before
migrations existed:
- nothing: both tables are created (MySQL/MariaDB, PostgreSQL, SQLite);
- a table made by `nightwatch db init` before Alembic (`create_all` / `schema.sql`): left as it
  is, only the indexes a later version added and the epoch row are added; in effect stamped;
- the original Go nightwatch's `task` table (no `version` column): see `legacy.py`.

Types are written out here, not taken from `tables.py`: a revision is frozen once released.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_MYSQL = ("mysql", "mariadb")
INDEXES = {
    "ix_task_status_id": ["status", "id"],
    "ix_task_user_id_id": ["user_id", "id"],
    "ix_task_namespace_id": ["namespace", "id"],
}


def _datetime() -> sa.types.TypeEngine[datetime]:
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), *_MYSQL)


def _now(dialect: str) -> sa.TextClause | sa.sql.functions.current_timestamp:
    # DATETIME(6) wants a default of the same precision on MySQL.
    return sa.text("CURRENT_TIMESTAMP(6)") if dialect in _MYSQL else sa.func.current_timestamp()


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    inspector = sa.inspect(bind)
    tables = set(inspector.get_table_names())
    if "task" not in tables:
        _create_task(dialect)
    else:
        columns = {c["name"] for c in inspector.get_columns("task")}
        if "version" not in columns:
            from nightwatch.adapters.sql.migrations.legacy import upgrade_legacy_task

            upgrade_legacy_task(bind)
        present = {i["name"] for i in sa.inspect(bind).get_indexes("task")}
        for name, columns_of in INDEXES.items():
            if name not in present:
                op.create_index(name, "task", columns_of)
    if "leader_epoch" not in tables:
        op.create_table(
            "leader_epoch",
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
            sa.Column("epoch", sa.BigInteger(), nullable=False, server_default="0"),
            mysql_engine="InnoDB",
            mysql_charset="utf8mb4",
        )
    epoch = sa.table("leader_epoch", sa.column("id", sa.Integer()), sa.column("epoch", sa.BigInteger()))
    if bind.execute(sa.select(sa.func.count()).select_from(epoch).where(epoch.c.id == 1)).scalar_one() == 0:
        bind.execute(sa.insert(epoch).values(id=1, epoch=0))


def _create_task(dialect: str) -> None:
    op.create_table(
        "task",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(45), nullable=False),
        sa.Column("namespace", sa.String(45), nullable=False),
        sa.Column("info", sa.Text().with_variant(mysql.MEDIUMTEXT(), *_MYSQL), nullable=True),
        sa.Column(
            "status",
            sa.String(45).with_variant(mysql.VARCHAR(45, charset="utf8mb4", collation="utf8mb4_bin"), *_MYSQL),
            nullable=False,
            server_default="Normal",
        ),
        sa.Column("user_id", sa.BigInteger(), nullable=True, server_default="0"),
        sa.Column("created_at", _datetime(), nullable=False, server_default=_now(dialect)),
        sa.Column("updated_at", _datetime(), nullable=False, server_default=_now(dialect)),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("job_name", sa.String(253), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("started_at", _datetime(), nullable=True),
        sa.Column("finished_at", _datetime(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(create_constraint=False), nullable=False, server_default="0"),
        sa.UniqueConstraint("name", "namespace", name="uq_task_name_namespace"),
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
    )
    for name, columns in INDEXES.items():
        op.create_index(name, "task", columns)


def downgrade() -> None:
    op.drop_table("leader_epoch")
    op.drop_table("task")
