"""Turning `task` rows into `Task` entities without letting one bad row break a listing.

Rows come from nightwatch, from the original system and from people typing SQL, so anything can
be in them: NULL `info` (read as ""; the domain rejects it later with a message on the task), a
status nightwatch does not know, a zero date. A row that cannot become a `Task` is logged with its
id and skipped by listings; `get` of such a row raises `UnreadableTask`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from nightwatch.adapters.sql.tables import task as task_table
from nightwatch.domain.errors import PermanentError
from nightwatch.domain.model import Task, TaskId, TaskStatus

log = logging.getLogger(__name__)

TASK_COLUMNS: Sequence[sa.Column[Any]] = tuple(task_table.c)


class UnreadableTask(PermanentError):
    """The row exists but cannot be a `Task` (e.g. status 'normal'); nightwatch leaves it alone.

    Not `TaskNotFound`: the row is there, and saying so helps whoever typed it fix it.
    """


def to_task(row: sa.Row[Any]) -> Task:
    """The entity for one row; raises UnreadableTask saying what is wrong with it."""
    m = row._mapping
    status = TaskStatus.parse(m["status"]) if isinstance(m["status"], str) else None
    if status is None:
        raise UnreadableTask(f"task {m['id']} has status {m['status']!r} which nightwatch does not know")
    return Task(
        id=TaskId(int(m["id"])),
        name=str(m["name"]),
        namespace=str(m["namespace"]),
        info=m["info"] if m["info"] is not None else "",
        status=status,
        user_id=int(m["user_id"] or 0),
        message=m["message"] or "",
        job_name=m["job_name"],
        version=int(m["version"]),
        cancel_requested=bool(m["cancel_requested"]),
        created_at=_when(m, "created_at"),
        started_at=_when(m, "started_at"),
        finished_at=_when(m, "finished_at"),
    )


def to_tasks(rows: Iterable[sa.Row[Any]], *, log_level: int = logging.WARNING) -> list[Task]:
    """Every readable row as a `Task`, in order; unreadable rows are logged (at `log_level`) and skipped."""
    tasks: list[Task] = []
    for row in rows:
        try:
            tasks.append(to_task(row))
        except (PermanentError, ValueError, TypeError, KeyError) as error:
            log.log(log_level, "skipping task %s: %s", row._mapping.get("id"), error)
    return tasks


def _when(m: Any, column: str) -> datetime | None:
    value = m[column]
    if value is None or isinstance(value, datetime):
        return value
    # A zero date or garbage in a DATETIME: the timestamp is lost, the task is still usable.
    log.warning("task %s: %s %r is not a timestamp; reading it as NULL", m["id"], column, value)
    return None
