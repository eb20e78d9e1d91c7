"""The batched compare-and-set UPDATE: one statement for hundreds of status changes.

    UPDATE task SET status = CASE id WHEN :id1 THEN :s1 ... END, message = CASE ..., job_name = ...,
                    started_at = ..., finished_at = ..., version = version + 1, updated_at = :now
    WHERE id IN (:id1, ...)
      AND CASE id WHEN :id1 THEN status = :e1 AND version = :v1 ... END
      AND EXISTS (SELECT 1 FROM leader_epoch WHERE id = 1 AND epoch = :epoch)

It runs the same on MariaDB/MySQL and SQLite. PyMySQL's executemany sends one UPDATE per row, so
it is not used. On InnoDB the EXISTS subquery takes a shared lock on the epoch row until commit,
so a successor's `advance_epoch` waits for a batch in progress rather than interleaving with it.
PostgreSQL takes no such lock on a plain read, so there the subquery says `FOR SHARE`: the same
wait, and a batch that waited re-reads the epoch row as committed (a superseded epoch matches
nothing). PostgreSQL also refuses a boolean CASE with an integer ELSE, so there it is `ELSE FALSE`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from nightwatch.adapters.sql.tables import EPOCH_ROW_ID, UtcDateTime, leader_epoch, task
from nightwatch.domain.model import StatusChange, TaskStatus
from nightwatch.domain.notifications import DeliveryState, event_of

EVENT_COLUMNS = (
    "task_id",
    "at",
    "attempt",
    "from_status",
    "to_status",
    "job_name",
    "failure_class",
    "reason",
    "message",
    "epoch",
)
FAILURE_CLASS_CHARS = 32
REASON_CHARS = 128
"""The width of `task_event.reason` (a condition's reason is a CamelCase word; a hand-made one may not be)."""

CHUNK_ROWS = 500
"""Rows per UPDATE: about 14 bound values each, far below SQLite's variable limit (32766) and
MySQL's max_allowed_packet even with 4000-character messages (500 x 16 kB = 8 MB < 16 MB)."""


def chunks(changes: Sequence[StatusChange], size: int = CHUNK_ROWS) -> Iterator[list[StatusChange]]:
    """Consecutive chunks of at most `size`; a task id seen again starts a new chunk, so a second
    change to the same task is compared against the first one's outcome, as the memory store does."""
    chunk: list[StatusChange] = []
    seen: set[int] = set()
    for change in changes:
        if len(chunk) >= size or change.task_id in seen:
            yield chunk
            chunk, seen = [], set()
        chunk.append(change)
        seen.add(change.task_id)
    if chunk:
        yield chunk


def _one_or_case(chunk: Sequence[StatusChange], values: Sequence[Any], params: list[Any], mark: str) -> str:
    """One parameter when the chunk agrees on a column's value (a sync tick's "Succeeded", its finish
    time), else a CASE on the row id: a 500-branch CASE per column is most of what MariaDB spends on
    a statement. Appends the values to `params`."""
    if all(v == values[0] for v in values):
        params.append(values[0])
        return mark
    params.extend(values)
    return "CASE id " + " ".join(f"WHEN {int(c.task_id)} THEN {mark}" for c in chunk) + " END"


def cas_update(
    chunk: Sequence[StatusChange], *, epoch: int, now: datetime, dialect: Dialect
) -> tuple[str, tuple[Any, ...]]:
    """The UPDATE as driver SQL and positional parameters.

    Written out by hand rather than built from Core expressions: building and compiling a
    2,500-branch CASE tree cost four times more than running it. Ids, versions and the epoch are
    ints (rendered with int(), so nothing untrusted is inlined); strings and times are parameters.
    """
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    stamp = UtcDateTime().process_bind_param
    params: list[Any] = []

    def per_row(values: list[Any]) -> str:
        return _one_or_case(chunk, values, params, mark)

    sets = [
        f"status = {per_row([str(c.status) for c in chunk])}",
        f"message = {per_row([c.message for c in chunk])}",
    ]
    if any(c.expected_status is TaskStatus.NORMAL for c in chunk):
        # Only a start (Normal -> Pending) sets these (see Task._move); other moves carry them unchanged.
        sets.append(f"job_name = {per_row([c.job_name for c in chunk])}")
        sets.append(f"started_at = {per_row([stamp(c.started_at, dialect) for c in chunk])}")
        sets.append(f"queue = {per_row([c.queue for c in chunk])}")
    if any(c.status is TaskStatus.NORMAL for c in chunk):
        # Only a move to Normal (postponed, or a retry) sets these; other moves carry them unchanged.
        sets.append(f"attempt = {per_row([int(c.attempt) for c in chunk])}")
        sets.append(f"next_attempt_at = {per_row([stamp(c.next_attempt_at, dialect) for c in chunk])}")
    sets += [
        f"finished_at = {per_row([stamp(c.finished_at, dialect) for c in chunk])}",
        "version = version + 1",
        f"updated_at = {mark}",
    ]
    params.append(stamp(now, dialect))
    ids = ", ".join(str(int(c.task_id)) for c in chunk)
    params.extend(str(c.expected_status) for c in chunk)
    matches = " ".join(
        f"WHEN {int(c.task_id)} THEN status = {mark} AND version = {int(c.expected_version)}" for c in chunk
    )
    # PostgreSQL will not mix a boolean CASE with an integer ELSE; the others read FALSE as 0 anyway.
    postgres = dialect.name == "postgresql"
    otherwise, lock = ("FALSE", " FOR SHARE") if postgres else ("0", "")
    sql = (
        f"UPDATE task SET {', '.join(sets)} WHERE id IN ({ids}) AND CASE id {matches} ELSE {otherwise} END"
        f" AND EXISTS (SELECT 1 FROM leader_epoch WHERE id = {EPOCH_ROW_ID} AND epoch = {int(epoch)}{lock})"
    )
    return sql, tuple(params)


def outcome_query(chunk: Sequence[StatusChange]) -> sa.Select[Any]:
    """The current epoch plus (id, status, version, updated_at) of the chunk's rows, in one SELECT.

    Driven from the epoch row so the epoch comes back even when every task row is gone.
    """
    ids = [c.task_id for c in chunk]
    return (
        sa.select(leader_epoch.c.epoch, task.c.id, task.c.status, task.c.version, task.c.updated_at)
        .select_from(leader_epoch.outerjoin(task, task.c.id.in_(ids)))
        .where(leader_epoch.c.id == EPOCH_ROW_ID)
    )


def event_insert(chunk: Sequence[StatusChange], *, epoch: int | None, dialect: Dialect) -> tuple[str, tuple[Any, ...]]:
    """ONE INSERT ... SELECT of the history rows of `chunk` (changes that won their compare-and-set).

    Run right after the chunk's UPDATE in the same transaction, so the task rows already hold what
    the event records (attempt, status, job name, message, and `updated_at`, the batch's time): they
    are copied in the database instead of sent again. Only what the row does not hold is sent: the
    status moved from, the failure class and reason (one value for the chunk when they agree, so a
    sync tick's events cost a list of ids). A multi-row VALUES of the same rows cost as much as the
    UPDATE itself (measured 2x on MariaDB, 2.5x on PostgreSQL for a dispatch batch).
    """
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    params: list[Any] = []

    def per_row(values: list[str]) -> str:
        return _one_or_case(chunk, values, params, mark)

    source = per_row([str(c.expected_status) for c in chunk])
    klass = per_row([c.failure_class[:FAILURE_CLASS_CHARS] for c in chunk])
    reason = per_row([c.reason[:REASON_CHARS] for c in chunk])
    written_by = "NULL" if epoch is None else str(int(epoch))
    ids = ", ".join(str(int(c.task_id)) for c in chunk)
    sql = (
        f"INSERT INTO task_event ({', '.join(EVENT_COLUMNS)}) "
        f"SELECT id, updated_at, attempt, {source}, status, job_name, {klass}, {reason}, message, {written_by} "
        f"FROM task WHERE id IN ({ids}) ORDER BY id"
    )
    return sql, tuple(params)


OUTBOX_COLUMNS = ("task_id", "attempt", "event", "message", "created_at", "state", "tries", "log_pending")


def outbox_insert(chunk: Sequence[StatusChange], *, dialect: Dialect) -> tuple[str, tuple[Any, ...]] | None:
    """ONE INSERT ... SELECT of the outbox rows of `chunk` (changes that won their compare-and-set), or
    None when none of them is worth telling (`event_of`).

    Like `event_insert`, run right after the chunk's UPDATE and copied from the rows it wrote (the
    change's attempt and message, its `updated_at` as the event's time). A Core multi-row VALUES of the
    same rows took half of the leader's interpreter time in a burst of 9,800 finished Jobs: SQLAlchemy
    compiles such a statement anew for every size, eight bound values a row.
    """
    told = [(c, event) for c in chunk if (event := event_of(c)) is not None]
    if not told:
        return None
    changes = [c for c, _ in told]
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    params: list[Any] = []
    # Parameters in the order their marks appear: event, state, log_pending.
    event = _one_or_case(changes, [e for _, e in told], params, mark)
    params.append(str(DeliveryState.PENDING))
    # Only a terminal attempt's output is captured so far (see outbox.py).
    log_pending = _one_or_case(changes, [c.status.is_terminal for c in changes], params, mark)
    ids = ", ".join(str(int(c.task_id)) for c in changes)
    sql = (
        f"INSERT INTO outbox ({', '.join(OUTBOX_COLUMNS)}) "
        f"SELECT id, attempt, {event}, message, updated_at, {mark}, 0, {log_pending} "
        f"FROM task WHERE id IN ({ids}) ORDER BY id"
    )
    return sql, tuple(params)
