"""The SQLAlchemy Core tables, kept in step with the canonical `schema.sql`.

`schema.sql` creates the MySQL/MariaDB schema; this metadata creates the SQLite one and is what
the queries are built from. A test reflects a database made from `schema.sql` and compares it
with this metadata column by column, so the two cannot drift apart silently.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect

EPOCH_ROW_ID = 1
"""The one row of `leader_epoch`."""

_MYSQL = ("mysql", "mariadb")


class _RawSqliteDateTime(sa.types.UserDefinedType[str]):
    """DATETIME in SQLite's DDL, but values pass through untouched: `UtcDateTime` parses them
    itself, because SQLAlchemy's own parser raises mid-fetch on a hand-written bad value."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "DATETIME"


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes in Python, naive UTC in the column (DATETIME(6) on MySQL)."""

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name in _MYSQL:
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        if dialect.name == "sqlite":
            return _RawSqliteDateTime()
        return dialect.type_descriptor(sa.DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        naive = value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value
        # SQLAlchemy's own SQLite format, so rows written before and after compare and sort alike.
        return naive.strftime("%Y-%m-%d %H:%M:%S.%f") if dialect.name == "sqlite" else naive

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                return value
        # Anything but a datetime (garbage text, MySQL's zero date, which PyMySQL returns as a
        # string) is passed through for the row mapper to report: one bad row never breaks a listing.
        if isinstance(value, datetime):
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value


def _status_type() -> sa.types.TypeEngine[str]:
    # Binary collation on MySQL so 'normal' != 'Normal'; SQLite compares case-sensitively already.
    return sa.String(45).with_variant(mysql.VARCHAR(45, charset="utf8mb4", collation="utf8mb4_bin"), *_MYSQL)


# A BIGINT primary key is not an alias of SQLite's rowid, so it would not autoincrement there.
_BIGINT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData()

task = sa.Table(
    "task",
    metadata,
    sa.Column("id", _BIGINT_ID, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(45), nullable=False),
    sa.Column("namespace", sa.String(45), nullable=False),
    # MEDIUMTEXT on MySQL: TEXT stops at 64 kB, and people do paste large specs.
    sa.Column("info", sa.Text().with_variant(mysql.MEDIUMTEXT(), *_MYSQL), nullable=True),
    sa.Column("status", _status_type(), nullable=False, server_default="Normal"),
    sa.Column("user_id", sa.BigInteger(), nullable=True, server_default="0"),
    sa.Column("created_at", UtcDateTime(), nullable=False, server_default=sa.func.current_timestamp()),
    sa.Column("updated_at", UtcDateTime(), nullable=False, server_default=sa.func.current_timestamp()),
    sa.Column("message", sa.Text(), nullable=True),
    sa.Column("job_name", sa.String(253), nullable=True),
    sa.Column("version", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("started_at", UtcDateTime(), nullable=True),
    sa.Column("finished_at", UtcDateTime(), nullable=True),
    sa.Column("cancel_requested", sa.Boolean(create_constraint=False), nullable=False, server_default="0"),
    sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"),
    # Not dispatched before this (NULL: at once). Set from run_at at submit, by a retry's backoff, and
    # by dispatch for a row whose run_at was written by hand.
    sa.Column("next_attempt_at", UtcDateTime(), nullable=True),
    sa.Column("run_at", UtcDateTime(), nullable=True),
    # The schedule and slot a task was made for (NULL for a submitted task): a slot makes one task.
    sa.Column("schedule_id", sa.BigInteger(), nullable=True),
    sa.Column("slot_at", UtcDateTime(), nullable=True),
    # Higher first (negative for backfills); see domain/queues.py for the bounds.
    sa.Column("priority", sa.Integer(), nullable=False, server_default="0"),
    # The queue a task was launched under (written by dispatch with the start): in-flight rows are
    # counted by it, so a queue's limit holds across leaders without parsing any row's info.
    sa.Column("queue", sa.String(63), nullable=True),
    sa.UniqueConstraint("name", "namespace", name="uq_task_name_namespace"),
    sa.UniqueConstraint("schedule_id", "slot_at", name="uq_task_schedule_id_slot_at"),
    sa.Index("ix_task_status_id", "status", "id"),
    # Dispatch's two reads: (Normal, NULL) in id order, and (Normal, due times) earliest first.
    sa.Index("ix_task_status_next_attempt_at_id", "status", "next_attempt_at", "id"),
    # The ready read by priority: one equality range per distinct priority, highest first (docs/queues.md).
    sa.Index("ix_task_status_next_attempt_at_priority_id", "status", "next_attempt_at", "priority", "id"),
    # Fair share: the users with ready work (a skip scan) and each one's oldest ready tasks.
    sa.Index("ix_task_status_next_attempt_at_user_id_id", "status", "next_attempt_at", "user_id", "id"),
    # In-flight counts by (queue, user): a GROUP BY over the in-flight rows only.
    sa.Index("ix_task_status_queue_user_id", "status", "queue", "user_id"),
    # The API's per-user and per-namespace listings (newest first) walk these backwards.
    sa.Index("ix_task_user_id_id", "user_id", "id"),
    sa.Index("ix_task_namespace_id", "namespace", "id"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

task_event = sa.Table(
    "task_event",
    metadata,
    sa.Column("id", _BIGINT_ID, primary_key=True, autoincrement=True),
    # No foreign key: a row deleted by hand keeps its history, and the insert needs no lookup.
    sa.Column("task_id", sa.BigInteger(), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"),
    sa.Column("from_status", sa.String(45), nullable=True),
    sa.Column("to_status", sa.String(45), nullable=False),
    sa.Column("job_name", sa.String(253), nullable=True),
    sa.Column("failure_class", sa.String(32), nullable=False, server_default=""),
    sa.Column("reason", sa.String(128), nullable=False, server_default=""),
    sa.Column("message", sa.Text(), nullable=True),
    sa.Column("epoch", sa.BigInteger(), nullable=True),
    # A task's timeline: its events in id order.
    sa.Index("ix_task_event_task_id_id", "task_id", "id"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)
"""A task's history: one row per applied status change (and its creation), written in the same
transaction as the change (`SqlTaskRepository.apply` / `add`)."""

queue_state = sa.Table(
    "queue_state",
    metadata,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("paused", sa.Boolean(create_constraint=False), nullable=False, server_default="0"),
    sa.Column("updated_at", UtcDateTime(), nullable=False, server_default=sa.func.current_timestamp()),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)
"""A queue's run state (paused or not), shared by every replica; no row means running."""

leader_epoch = sa.Table(
    "leader_epoch",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("epoch", sa.BigInteger(), nullable=False, server_default="0"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

schedule = sa.Table(
    "schedule",
    metadata,
    sa.Column("id", _BIGINT_ID, primary_key=True, autoincrement=True),
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
    sa.Column("created_at", UtcDateTime(), nullable=False, server_default=sa.func.current_timestamp()),
    sa.Column("updated_at", UtcDateTime(), nullable=False, server_default=sa.func.current_timestamp()),
    # Every slot up to last_slot_at is handled (fired, missed or skipped); the spawner moves it by CAS.
    sa.Column("last_slot_at", UtcDateTime(), nullable=False, server_default=sa.func.current_timestamp()),
    sa.Column("last_fired_at", UtcDateTime(), nullable=True),
    sa.Column("fired", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("missed", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("skipped", sa.BigInteger(), nullable=False, server_default="0"),
    sa.UniqueConstraint("name", "namespace", name="uq_schedule_name_namespace"),
    sa.Index("ix_schedule_user_id_id", "user_id", "id"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

# The transactional outbox: one row per event worth telling (`domain/notifications.event_of`), written
# by `apply` in the status write's transaction. Two consumers keep their progress on it: the webhook
# sender (state, tries, next_attempt_at, delivered_to, last_error) and the log capture (log_pending).
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", _BIGINT_ID, primary_key=True, autoincrement=True),
    sa.Column("task_id", sa.BigInteger(), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"),
    sa.Column("event", sa.String(16), nullable=False),
    sa.Column("message", sa.Text(), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False, server_default=sa.func.current_timestamp()),
    sa.Column("state", sa.String(16), nullable=False, server_default="pending"),
    sa.Column("tries", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UtcDateTime(), nullable=True),
    sa.Column("delivered_to", sa.Text(), nullable=True),
    sa.Column("last_error", sa.Text(), nullable=True),
    sa.Column("log_pending", sa.Boolean(create_constraint=False), nullable=False, server_default="0"),
    # The sender's read (pending, oldest first), its per-task order check, and the log capture's read.
    sa.Index("ix_outbox_state_id", "state", "id"),
    sa.Index("ix_outbox_task_id_id", "task_id", "id"),
    sa.Index("ix_outbox_log_pending_id", "log_pending", "id"),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)

# The last `logs.keep_bytes` of a finished attempt's output, kept after its pod or directory is gone.
task_log = sa.Table(
    "task_log",
    metadata,
    sa.Column("task_id", sa.BigInteger(), primary_key=True, autoincrement=False),
    sa.Column("attempt", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("output", sa.Text().with_variant(mysql.MEDIUMTEXT(), *_MYSQL), nullable=True),
    sa.Column("truncated", sa.Boolean(create_constraint=False), nullable=False, server_default="0"),
    sa.Column("captured_at", UtcDateTime(), nullable=False, server_default=sa.func.current_timestamp()),
    mysql_engine="InnoDB",
    mysql_charset="utf8mb4",
)
