"""`SqlQueueStates`: the QueueStates port on the `queue_state` table.

A paused queue is a row with `paused` true; every replica reads the table each dispatch tick, so a
pause holds across leaders and failovers and takes effect within one tick. Not fenced: like a
cancellation request it is a user's command, not a leader's write.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from nightwatch.adapters.sql.retry import DbRetry, with_retry
from nightwatch.adapters.sql.tables import queue_state
from nightwatch.domain.errors import PermanentError, RetryableError

T = TypeVar("T")


class SqlQueueStates:
    def __init__(self, engine: Engine, *, retry: DbRetry | None = None) -> None:
        self.engine = engine
        self._retry = retry or DbRetry()

    def set_paused(self, name: str, paused: bool, now: datetime) -> None:
        what = f"{'pause' if paused else 'resume'} queue {name}"

        def update(conn: Connection) -> int:
            return int(
                conn.execute(
                    sa.update(queue_state).where(queue_state.c.name == name).values(paused=paused, updated_at=now)
                ).rowcount
            )

        def upsert(conn: Connection) -> None:
            if update(conn) == 0:
                conn.execute(sa.insert(queue_state).values(name=name, paused=paused, updated_at=now))

        try:
            self._run(upsert, what)
        except (RetryableError, PermanentError):
            # Another replica inserted the row between our UPDATE and INSERT (a duplicate key): the
            # row exists now, so one more UPDATE sets it.
            if self._run(update, what) == 0:
                raise

    def paused(self) -> frozenset[str]:
        query = sa.select(queue_state.c.name).where(queue_state.c.paused == sa.true())
        return self._run(lambda conn: frozenset(str(n) for (n,) in conn.execute(query)), "read paused queues")

    def _run(self, work: Callable[[Connection], T], what: str) -> T:
        def attempt() -> T:
            with self.engine.begin() as conn:
                return work(conn)

        return with_retry(attempt, what=what, policy=self._retry)
