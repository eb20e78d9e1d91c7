"""Turning `task` rows into `Task` entities (or listed `TaskSummary`s) without letting one bad row
break a listing.

Rows come from nightwatch, from the original system and from people typing SQL, so anything can
be in them: NULL `info` (read as ""; the domain rejects it later with a message on the task), a
status nightwatch does not know, a zero date. A row that cannot become a `Task` is logged with its
id and skipped by listings; `get` of such a row raises `UnreadableTask`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa

from nightwatch.adapters.sql.tables import task as task_table
from nightwatch.domain.errors import PermanentError
from nightwatch.domain.model import Task, TaskId, TaskStatus
from nightwatch.domain.ports import (
    MAX_LISTED_JOB_NAME_CHARS,
    MAX_LISTED_MESSAGE_CHARS,
    MAX_LISTED_NAME_CHARS,
    TaskSummary,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

TASK_COLUMNS: Sequence[sa.Column[Any]] = tuple(
    c for c in task_table.c if c.name not in ("updated_at", "schedule_id", "slot_at")
)
"""What a `Task` is read from (`to_task`): every column but those only the SQL adapter's own queries
read (a write's time, a schedule's slot). Sync reads thousands of rows a second in a burst, and
decoding a column nobody reads (two of them datetimes) is a sixth of what each row costs here."""


def _first(column: sa.Column[Any], chars: int) -> sa.ColumnElement[Any]:
    # SUBSTR counts characters on SQLite, MySQL/MariaDB (multi-byte aware) and PostgreSQL alike.
    # One character past the bound, so `TaskSummary` still sees that the text was cut and marks it.
    return sa.func.substr(column, 1, chars + 1).label(column.name)


SUMMARY_COLUMNS: Sequence[sa.ColumnElement[Any]] = (
    task_table.c.id,
    _first(task_table.c.name, MAX_LISTED_NAME_CHARS),
    _first(task_table.c.namespace, MAX_LISTED_NAME_CHARS),
    task_table.c.status,
    task_table.c.user_id,
    _first(task_table.c.message, MAX_LISTED_MESSAGE_CHARS),
    _first(task_table.c.job_name, MAX_LISTED_JOB_NAME_CHARS),
    task_table.c.version,
    task_table.c.cancel_requested,
    task_table.c.created_at,
    task_table.c.started_at,
    task_table.c.finished_at,
    task_table.c.priority,
    task_table.c.next_attempt_at,
    task_table.c.run_at,
    task_table.c.queue,
)
"""What a listing selects: never `info` (up to 256 KiB a row, more if written by hand), and the
text columns cut in the query, so neither the database nor this process holds more than a summary."""


class UnreadableTask(PermanentError):
    """The row exists but cannot be a `Task` (e.g. status 'normal'); nightwatch leaves it alone.

    Not `TaskNotFound`: the row is there, and saying so helps whoever typed it fix it.
    """


def to_task(row: sa.Row[Any]) -> Task:
    """The entity for one row; raises UnreadableTask saying what is wrong with it."""
    m = row._mapping
    return Task(
        info=m["info"] if m["info"] is not None else "",
        attempt=int(m["attempt"]),
        next_attempt_at=_when(m, "next_attempt_at"),
        run_at=_when(m, "run_at"),
        priority=int(m["priority"] or 0),
        queue=m["queue"],
        **_listed_fields(m),
    )


def to_summary(row: sa.Row[Any]) -> TaskSummary:
    """The listed summary of one row of `SUMMARY_COLUMNS`; raises UnreadableTask like `to_task`."""
    m = row._mapping
    return TaskSummary(
        priority=int(m["priority"] or 0),
        next_attempt_at=_when(m, "next_attempt_at"),
        run_at=_when(m, "run_at"),
        queue=m["queue"],
        **_listed_fields(m),
    )


def _listed_fields(m: Any) -> dict[str, Any]:
    """Every column but `info`, typed (a task and its summary share these)."""
    return {
        "id": TaskId(int(m["id"])),
        "name": str(m["name"]),
        "namespace": str(m["namespace"]),
        "status": _status(m),
        "user_id": int(m["user_id"] or 0),
        "message": m["message"] or "",
        "job_name": m["job_name"],
        "version": int(m["version"]),
        "cancel_requested": bool(m["cancel_requested"]),
        "created_at": _when(m, "created_at"),
        "started_at": _when(m, "started_at"),
        "finished_at": _when(m, "finished_at"),
    }


def to_tasks(rows: Iterable[sa.Row[Any]], *, log_level: int = logging.WARNING) -> list[Task]:
    """Every readable row as a `Task`, in order; unreadable rows are logged (at `log_level`) and skipped."""
    return _readable(to_task, rows, log_level)


def to_summaries(rows: Iterable[sa.Row[Any]], *, log_level: int = logging.WARNING) -> list[TaskSummary]:
    """Every readable row of `SUMMARY_COLUMNS` as a `TaskSummary`, in order; unreadable rows skipped."""
    return _readable(to_summary, rows, log_level)


def _readable(read: Callable[[sa.Row[Any]], T], rows: Iterable[sa.Row[Any]], log_level: int) -> list[T]:
    found: list[T] = []
    for row in rows:
        try:
            found.append(read(row))
        except (PermanentError, ValueError, TypeError, KeyError) as error:
            log.log(log_level, "skipping task %s: %s", row._mapping.get("id"), error)
    return found


def _status(m: Any) -> TaskStatus:
    status = TaskStatus.parse(m["status"]) if isinstance(m["status"], str) else None
    if status is None:
        raise UnreadableTask(f"task {m['id']} has status {m['status']!r} which nightwatch does not know")
    return status


def _when(m: Any, column: str) -> datetime | None:
    value = m[column]
    if value is None or isinstance(value, datetime):
        return value
    # A zero date or garbage in a DATETIME: the timestamp is lost, the task is still usable.
    log.warning("task %s: %s %r is not a timestamp; reading it as NULL", m["id"], column, value)
    return None
