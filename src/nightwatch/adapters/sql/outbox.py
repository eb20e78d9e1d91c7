"""The outbox on SQL: the rows `apply` writes with each status change worth telling, and the
`Outbox` port the webhook sender reads and records its progress through.

`record_events` is called from `SqlTaskRepository.apply` for the rows of a chunk that won their
compare-and-set: one INSERT ... SELECT from those rows, in the same transaction, so an event exists exactly when its
status write does. Rows are written for every such change whatever webhooks are configured: the
sender filters (so the repository needs no configuration, and a webhook added later still gets the
events queued before). The sender's writes are conditional on the fencing epoch like every leader write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from nightwatch.adapters.sql.batch import outbox_insert
from nightwatch.adapters.sql.retry import DbRetry, with_retry
from nightwatch.adapters.sql.tables import EPOCH_ROW_ID, leader_epoch, outbox
from nightwatch.domain.errors import LeadershipLost
from nightwatch.domain.model import StatusChange, TaskId, clip
from nightwatch.domain.notifications import DeliveryOutcome, DeliveryState, OutboxEntry

T = TypeVar("T")

_COLUMNS = (
    outbox.c.id,
    outbox.c.task_id,
    outbox.c.attempt,
    outbox.c.event,
    outbox.c.message,
    outbox.c.created_at,
    outbox.c.state,
    outbox.c.tries,
    outbox.c.next_attempt_at,
    outbox.c.delivered_to,
    outbox.c.last_error,
)


def record_events(conn: Connection, changes: Sequence[StatusChange]) -> None:
    """Insert one outbox row per change worth telling (terminal, retry), in one statement
    (`batch.outbox_insert`: copied from the rows the changes were just written to)."""
    statement = outbox_insert(changes, dialect=conn.dialect)
    if statement is not None:
        conn.exec_driver_sql(*statement)


def _entry(row: Any) -> OutboxEntry:
    to = str(row.delivered_to or "")
    return OutboxEntry(
        id=int(row.id),
        task_id=TaskId(int(row.task_id)),
        attempt=int(row.attempt),
        event=str(row.event),
        message=str(row.message or ""),
        created_at=row.created_at,
        state=DeliveryState(row.state) if row.state in set(DeliveryState) else DeliveryState.FAILED,
        tries=int(row.tries),
        next_attempt_at=row.next_attempt_at,
        delivered_to=frozenset(k for k in to.split(",") if k),
        last_error=str(row.last_error or ""),
    )


def check_epoch(conn: Connection, epoch: int) -> None:
    """Raise LeadershipLost unless `epoch` is the fencing epoch; the row stays share-locked to commit
    (FOR SHARE; SQLite, which has no row locks, holds its write lock by then), so a successor's
    `advance_epoch` waits for this transaction."""
    query = sa.select(leader_epoch.c.epoch).where(leader_epoch.c.id == EPOCH_ROW_ID)
    if conn.dialect.name != "sqlite":
        query = query.with_for_update(read=True)
    current = conn.execute(query).scalar()
    if current is None or int(current) != epoch:
        raise LeadershipLost(f"fencing epoch {epoch} was superseded by {current}")


class SqlOutbox:
    """The `Outbox` port on the `outbox` table."""

    def __init__(self, engine: Engine, *, retry: DbRetry | None = None) -> None:
        self.engine = engine
        self._retry = retry or DbRetry()

    def due(self, now: datetime, *, limit: int = 100, exclude: frozenset[int] = frozenset()) -> list[OutboxEntry]:
        if limit <= 0:
            return []
        earlier = outbox.alias("earlier")
        # Per-task order: an entry waits while an older one of its task is still pending.
        blocked = sa.exists().where(
            earlier.c.task_id == outbox.c.task_id,
            earlier.c.state == str(DeliveryState.PENDING),
            earlier.c.id < outbox.c.id,
        )
        query = (
            sa.select(*_COLUMNS)
            .where(
                outbox.c.state == str(DeliveryState.PENDING),
                sa.or_(outbox.c.next_attempt_at.is_(None), outbox.c.next_attempt_at <= now),
                ~blocked,
            )
            .order_by(outbox.c.id)
            .limit(limit + len(exclude))
        )

        def run(conn: Connection) -> list[OutboxEntry]:
            entries = [_entry(row) for row in conn.execute(query)]
            return [e for e in entries if e.id not in exclude][:limit]

        return self._run(run, "list due notifications")

    def record(self, outcomes: Sequence[DeliveryOutcome], *, epoch: int) -> None:
        if not outcomes:
            return

        def run(conn: Connection) -> None:
            check_epoch(conn, epoch)
            for outcome in outcomes:
                conn.execute(
                    sa.update(outbox)
                    .where(outbox.c.id == outcome.entry_id, outbox.c.state == str(DeliveryState.PENDING))
                    .values(
                        state=str(outcome.state),
                        tries=outcome.tries,
                        next_attempt_at=outcome.next_attempt_at,
                        delivered_to=",".join(sorted(outcome.delivered_to)),
                        last_error=clip(outcome.last_error),
                    )
                )

        self._run(run, f"record {len(outcomes)} delivery outcomes")

    def recent(self, *, limit: int = 50, state: DeliveryState | None = None) -> list[OutboxEntry]:
        query = sa.select(*_COLUMNS).order_by(outbox.c.id.desc()).limit(max(limit, 0))
        if state is not None:
            query = query.where(outbox.c.state == str(state))
        return self._run(lambda conn: [_entry(row) for row in conn.execute(query)], "list notifications")

    def _run(self, work: Callable[[Connection], T], what: str) -> T:
        def attempt() -> T:
            with self.engine.begin() as conn:
                return work(conn)

        return with_retry(attempt, what=what, policy=self._retry)
