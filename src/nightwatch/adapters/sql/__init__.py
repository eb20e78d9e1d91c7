"""The SQL adapter: the TaskRepository port on SQLAlchemy 2 (MySQL/MariaDB via PyMySQL, SQLite)."""

from __future__ import annotations

from nightwatch.adapters.sql.engine import create_engine_for, redact
from nightwatch.adapters.sql.repository import SqlTaskRepository
from nightwatch.adapters.sql.retry import DbRetry
from nightwatch.adapters.sql.rows import UnreadableTask
from nightwatch.adapters.sql.schedules import SqlScheduleRepository
from nightwatch.adapters.sql.schema import init_database

__all__ = [
    "DbRetry",
    "SqlScheduleRepository",
    "SqlTaskRepository",
    "UnreadableTask",
    "create_engine_for",
    "init_database",
    "redact",
]
