"""The original Go nightwatch's `task` table, taken in place to revision 0001's shape (MySQL/MariaDB).

That table has `info` TEXT NOT NULL, a case-insensitive `status` without an index, nullable
timestamps (`updated_at` only set ON UPDATE) and none of nightwatch's columns. One `ALTER TABLE`
brings it to `schema.sql`'s shape, keeping every row and id. MariaDB 10.11 copies the table once
for it: TEXT to MEDIUMTEXT and DATETIME to DATETIME(6) are type changes it does only with
ALGORITHM=COPY (it says so when asked for INSTANT or NOCOPY); the collation of the unindexed
`status` and the added columns alone would be INSTANT, the indexes NOCOPY. Since one copy is
needed anyway, everything rides on it in one statement (100,000 rows: about 3 s).

The original wrote `Unknown` for a Job without pods yet; those rows become `Pending` (what
nightwatch calls that state), with a message saying so. Their Jobs carry none of nightwatch's
labels: the Kubernetes adapter adopts them by name on the first sync (`kubernetes/legacy.py`).
Timestamps are kept as they are and read as UTC, like every naive timestamp nightwatch stores.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from nightwatch.domain.errors import PermanentError

UNKNOWN_MESSAGE = "the original nightwatch said Unknown (a Job without pods yet): read as Pending by the upgrade"

_ALTER = """
ALTER TABLE task
    ALTER COLUMN name DROP DEFAULT,
    ALTER COLUMN namespace DROP DEFAULT,
    MODIFY info MEDIUMTEXT NULL,
    MODIFY status VARCHAR(45) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT 'Normal',
    MODIFY user_id BIGINT NULL DEFAULT 0,
    MODIFY created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    MODIFY updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    ADD COLUMN message TEXT NULL,
    ADD COLUMN job_name VARCHAR(253) NULL,
    ADD COLUMN version BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN started_at DATETIME(6) NULL,
    ADD COLUMN finished_at DATETIME(6) NULL,
    ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT 0,
    {rename_unique}
    ADD KEY ix_task_status_id (status, id),
    ADD KEY ix_task_user_id_id (user_id, id),
    ADD KEY ix_task_namespace_id (namespace, id),
    ENGINE=InnoDB, DEFAULT CHARSET=utf8mb4
"""


def upgrade_legacy_task(bind: Connection) -> None:
    if bind.dialect.name not in ("mysql", "mariadb"):
        raise PermanentError(
            f"a 'task' table without nightwatch's columns on {bind.dialect.name}: only the original "
            "nightwatch's MySQL/MariaDB table can be upgraded in place"
        )
    unique = [
        index["name"]
        for index in sa.inspect(bind).get_indexes("task")
        if index["unique"] and index["column_names"] == ["name", "namespace"]
    ]
    if not unique:
        raise PermanentError("the original nightwatch's 'task' table has no unique key on (name, namespace)")
    rename = "" if unique[0] == "uq_task_name_namespace" else f"RENAME INDEX `{unique[0]}` TO uq_task_name_namespace,"
    # NOT NULL timestamps: the original left updated_at NULL until a row's first update. Setting
    # both columns explicitly keeps ON UPDATE CURRENT_TIMESTAMP from stamping the upgrade's time.
    bind.exec_driver_sql(
        "UPDATE task SET created_at = COALESCE(created_at, updated_at, CURRENT_TIMESTAMP), "
        "updated_at = COALESCE(updated_at, created_at, CURRENT_TIMESTAMP) "
        "WHERE created_at IS NULL OR updated_at IS NULL"
    )
    bind.exec_driver_sql(_ALTER.format(rename_unique=rename))
    bind.execute(
        sa.text("UPDATE task SET status = 'Pending', message = :message WHERE status = 'Unknown'"),
        {"message": UNKNOWN_MESSAGE},
    )
