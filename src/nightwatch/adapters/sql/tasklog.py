"""The `TaskLogStore` port on SQL: the kept tail of each finished attempt's output (`task_log`).

What to capture comes from the outbox (`log_pending` on the entry of a terminal change), so the
capture watcher reads an index of a few pending rows rather than scanning finished tasks.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from nightwatch.adapters.sql.outbox import check_epoch
from nightwatch.adapters.sql.retry import DbRetry, with_retry
from nightwatch.adapters.sql.tables import outbox, task_log
from nightwatch.domain.model import TaskId
from nightwatch.domain.ports import LogCapture, StoredLog

T = TypeVar("T")


class SqlTaskLogs:
    def __init__(self, engine: Engine, *, retry: DbRetry | None = None) -> None:
        self.engine = engine
        self._retry = retry or DbRetry()

    def uncaptured(self, *, limit: int = 50) -> list[LogCapture]:
        query = (
            sa.select(outbox.c.id, outbox.c.task_id, outbox.c.attempt)
            .where(outbox.c.log_pending == sa.true())
            .order_by(outbox.c.id)
            .limit(max(limit, 0))
        )
        return self._run(
            lambda conn: [LogCapture(int(r.id), TaskId(int(r.task_id)), int(r.attempt)) for r in conn.execute(query)],
            "list logs to capture",
        )

    def keep(self, capture: LogCapture, output: str, *, truncated: bool, now: datetime, epoch: int) -> None:
        # PostgreSQL stores no NUL in text; the output is for people, so it reads as U+FFFD.
        output = output.replace("\x00", "\ufffd")

        def run(conn: Connection) -> None:
            check_epoch(conn, epoch)
            key = (task_log.c.task_id == capture.task_id, task_log.c.attempt == capture.attempt)
            # Delete then insert: one portable upsert (a second capture of an attempt replaces the first).
            conn.execute(sa.delete(task_log).where(*key))
            conn.execute(
                sa.insert(task_log).values(
                    task_id=capture.task_id,
                    attempt=capture.attempt,
                    output=output,
                    truncated=truncated,
                    captured_at=now,
                )
            )
            conn.execute(sa.update(outbox).where(outbox.c.id == capture.entry_id).values(log_pending=False))

        self._run(run, f"keep the output of task {capture.task_id}")

    def stored(self, task_id: TaskId, attempt: int) -> StoredLog | None:
        query = sa.select(task_log).where(task_log.c.task_id == task_id, task_log.c.attempt == attempt)

        def run(conn: Connection) -> StoredLog | None:
            row = conn.execute(query).first()
            if row is None:
                return None
            return StoredLog(task_id, attempt, str(row.output or ""), bool(row.truncated), row.captured_at)

        return self._run(run, f"read the kept output of task {task_id}")

    def _run(self, work: Callable[[Connection], T], what: str) -> T:
        def attempt() -> T:
            with self.engine.begin() as conn:
                return work(conn)

        return with_retry(attempt, what=what, policy=self._retry)
