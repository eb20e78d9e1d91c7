"""`SqlTaskRepository`: the TaskRepository port on SQLAlchemy Core (MySQL/MariaDB, PostgreSQL or SQLite).

Every method is one short transaction run through the retry helper; every status write is a
compare-and-set conditional on the fencing epoch (see `batch.py`). Queries follow the scale
rules: listings walk the `(status, id)` index in bounded pages, nothing loads the whole table, and
the newest-first listing (the API's and the CLI's) never selects `info`.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import closing
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Connection, Engine

from nightwatch.adapters.sql.batch import cas_update, chunks, event_insert, outcome_query
from nightwatch.adapters.sql.outbox import record_events
from nightwatch.adapters.sql.retry import DbRetry, is_duplicate_key, with_retry
from nightwatch.adapters.sql.rows import SUMMARY_COLUMNS, TASK_COLUMNS, to_summaries, to_task, to_tasks
from nightwatch.adapters.sql.tables import EPOCH_ROW_ID, leader_epoch, task, task_event
from nightwatch.domain.errors import (
    DuplicateTask,
    InvalidTransition,
    LeadershipLost,
    PermanentError,
    RetryableError,
    TaskNotFound,
)
from nightwatch.domain.model import (
    IN_FLIGHT_STATUSES,
    TERMINAL_STATUSES,
    StatusChange,
    Task,
    TaskEvent,
    TaskId,
    TaskStatus,
)
from nightwatch.domain.observation import KUEUE_QUEUED_PREFIX
from nightwatch.domain.ports import NewTask, TaskFilter, TaskPage, WriteResult
from nightwatch.domain.queues import InFlight

T = TypeVar("T")

_ACTIVE = tuple(str(s) for s in TaskStatus if s not in TERMINAL_STATUSES)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _Superseded(Exception):
    """Raised inside the apply transaction to roll it back; becomes LeadershipLost outside it."""

    def __init__(self, current: int) -> None:
        super().__init__(current)
        self.current = current


GET_MANY_CHUNK = 1000
"""Ids per `get_many` statement (well under every dialect's bound-parameter limit)."""


class SqlTaskRepository:
    def __init__(
        self,
        engine: Engine,
        *,
        retry: DbRetry | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.engine = engine
        self._retry = retry or DbRetry()
        self._clock = clock
        self._pads = engine.dialect.name in ("mysql", "mariadb")

    def close(self) -> None:
        """Close every pooled connection (the engine is still usable afterwards)."""
        self.engine.dispose()

    def ping(self) -> None:
        """Read one row over a fresh connection (SQLite) or a pre-pinged pooled one (MySQL).

        A pooled SQLite connection keeps its open file and page cache, so it would still answer
        after the file was replaced or corrupted; readiness must look at the file as it is now.
        """
        if self.engine.dialect.name == "sqlite":
            database = self.engine.url.database or ""
            try:
                with closing(sqlite3.connect(f"file:{database}?mode=rw", uri=True, timeout=2)) as conn:
                    conn.execute("SELECT id FROM task LIMIT 1").fetchall()
            except sqlite3.Error as error:
                raise RetryableError(f"SQLite database {database} is not readable: {error}") from None
            return
        self._run(lambda conn: conn.execute(sa.select(task.c.id).limit(1)).all(), "ping")

    # -- reads ---------------------------------------------------------------------------------
    def get(self, task_id: TaskId) -> Task:
        """One task. Raises TaskNotFound, UnreadableTask (a row nightwatch cannot read), RetryableError."""

        def run(conn: Connection) -> Task:
            row = conn.execute(sa.select(*TASK_COLUMNS).where(task.c.id == task_id)).first()
            if row is None:
                raise TaskNotFound(f"no task with id {task_id}")
            return to_task(row)

        return self._run(run, f"get task {task_id}")

    def list_by_status(self, statuses: Sequence[TaskStatus], *, after_id: int = 0, limit: int = 500) -> list[Task]:
        wanted = sorted({str(s) for s in statuses})
        if not wanted or limit <= 0:
            return []
        # One status is an equality, so the (status, id) index yields rows already in id order.
        match = _status_is(wanted, pads=self._pads)

        def page(after: int, size: int) -> sa.Select[Any]:
            return sa.select(*TASK_COLUMNS).where(match, task.c.id > after).order_by(task.c.id).limit(size)

        return self._run(lambda conn: _readable(conn, page, after_id, limit), "list tasks by status")

    def get_many(self, task_ids: Collection[TaskId], *, statuses: Collection[TaskStatus] | None = None) -> list[Task]:
        ids = sorted({int(i) for i in task_ids})
        if not ids:
            return []
        wanted = None if statuses is None else sorted({str(s) for s in statuses})
        if wanted == []:
            return []

        def run(conn: Connection) -> list[Task]:
            # By primary key, GET_MANY_CHUNK ids a statement: never a scan of the in-flight rows.
            tasks: list[Task] = []
            for start in range(0, len(ids), GET_MANY_CHUNK):
                query = sa.select(*TASK_COLUMNS).where(task.c.id.in_(ids[start : start + GET_MANY_CHUNK]))
                if wanted is not None:
                    query = query.where(_status_is(wanted, pads=self._pads))
                tasks.extend(to_tasks(conn.execute(query.order_by(task.c.id)).all()))
            return tasks

        return self._run(run, f"get {len(ids)} task(s) by id")

    def list_newest(self, where: TaskFilter, *, before_id: int | None = None, limit: int = 50) -> TaskPage:
        if limit <= 0 or (where.statuses is not None and not where.statuses):
            return TaskPage((), None)
        conditions: list[sa.ColumnElement[bool]] = []
        if where.namespace is not None:
            conditions.append(task.c.namespace == where.namespace)
        if where.user_id is not None:
            conditions.append(_user_is(where.user_id))
        if where.schedule_id is not None:
            conditions.append(task.c.schedule_id == where.schedule_id)
        if before_id is not None:
            conditions.append(task.c.id < before_id)

        def newest(*extra: sa.ColumnElement[bool]) -> sa.Select[Any]:
            query = sa.select(*SUMMARY_COLUMNS).where(*conditions, *extra)
            return query.order_by(task.c.id.desc()).limit(limit + 1)

        # One query per status, each walking the (status, id) index backwards and stopping after
        # limit + 1 rows, merged here: with `status IN (...)` MySQL sorts every matching row first.
        if where.statuses is None:
            queries = [newest()]
        else:
            queries = [newest(task.c.status == str(status)) for status in sorted(where.statuses)]

        def run(conn: Connection) -> TaskPage:
            rows = sorted((row for query in queries for row in conn.execute(query)), key=_row_id, reverse=True)
            scanned = rows[:limit]
            # A browsing user does not need a warning per unreadable row on every refresh.
            summaries = to_summaries(scanned, log_level=logging.DEBUG)
            return TaskPage(tuple(summaries), _row_id(scanned[-1]) if len(rows) > limit else None)

        return self._run(run, "list newest tasks")

    def list_ready(self, *, after_id: int = 0, after_priority: int | None = None, limit: int = 500) -> list[Task]:
        if limit <= 0:
            return []
        # No index serves "priority DESC, id ASC" on every dialect (MariaDB before 10.8 ignores DESC in
        # an index), so walk it: per distinct priority, highest first, an equality range on
        # (Normal, NULL, priority) that yields rows in id order; MAX(priority) below the current one
        # is one index probe. O(limit + priorities crossed), whatever waits behind.
        ready = sa.and_(_status_is([str(TaskStatus.NORMAL)], pads=self._pads), task.c.next_attempt_at.is_(None))

        def run(conn: Connection) -> list[Task]:
            tasks: list[Task] = []
            level = after_priority if after_priority is not None else _next_priority(conn, ready, None)
            after = after_id
            while level is not None and len(tasks) < limit:
                match = sa.and_(ready, task.c.priority == level)

                def page(after: int, size: int, match: sa.ColumnElement[bool] = match) -> sa.Select[Any]:
                    query = sa.select(*TASK_COLUMNS).where(match, task.c.id > after)
                    return query.order_by(*_ready_order(conn, task.c.id)).limit(size)

                tasks.extend(_readable(conn, page, after, limit - len(tasks)))
                if len(tasks) >= limit:
                    break
                level = _next_priority(conn, ready, level)
                after = after_id if after_priority is None else 0
            return tasks

        return self._run(run, "list ready tasks")

    def list_ready_users(self, *, after_user: int | None = None, limit: int = 1000) -> list[int]:
        if limit <= 0:
            return []

        def run(conn: Connection) -> list[int]:
            # A skip scan in one statement: each step of the recursive CTE is one probe of the
            # (status, next_attempt_at, user_id, id) index (MIN above the last user), so a user with
            # 50,000 ready tasks costs what one with 5 does. PostgreSQL has no loose index scan and
            # MariaDB's needs a GROUP BY it does not always choose; this is the same plan on all
            # three. In steps of at most _SKIP_SCAN_STEPS: MariaDB stops a recursion at 1000
            # iterations by default (max_recursive_iterations).
            users: list[int] = []
            last = after_user
            while len(users) < limit:
                steps = min(_SKIP_SCAN_STEPS, limit - len(users))
                query = _ready_users_query(last is None, _pads(conn), _steers(conn))
                found = [int(u) for (u,) in conn.execute(query, _skip_params(last, steps, _pads(conn)))]
                users.extend(found)
                if len(found) < steps:
                    break
                last = users[-1]
            return users

        return self._run(run, "list users with ready tasks")

    def list_ready_of_users(self, user_ids: Sequence[int], *, per_user: int) -> list[Task]:
        if per_user <= 0 or not user_ids:
            return []

        def run(conn: Connection) -> list[Task]:
            # One UNION ALL of per-user heads per chunk of users: each arm an equality range on
            # (Normal, NULL, user_id) in id order, stopped after per_user rows. The statement text is
            # built once per arm count (building Core expressions per tick cost more than running them),
            # and the arm count is rounded up to a multiple of _ARMS_STEP by repeating the last user
            # (its rows are dropped once): a new count per tick made each tick compile and prepare
            # a new statement, which cost more than running it.
            tasks: list[Task] = []
            seen: set[TaskId] = set()
            unique = sorted(set(user_ids))
            for start in range(0, len(unique), _USERS_PER_STATEMENT):
                chunk = unique[start : start + _USERS_PER_STATEMENT]
                arms = min(-(-len(chunk) // _ARMS_STEP) * _ARMS_STEP, _USERS_PER_STATEMENT)
                params: dict[str, Any] = {f"u{i}": chunk[min(i, len(chunk) - 1)] for i in range(arms)}
                params |= {"per_user": per_user, **_skip_params(None, 0, _pads(conn))}
                params.pop("steps")
                for found in to_tasks(conn.execute(_heads_query(arms, _pads(conn), _steers(conn)), params)):
                    if found.id not in seen:
                        seen.add(found.id)
                        tasks.append(found)
            return tasks

        return self._run(run, "list ready tasks of users")

    def count_in_flight(self, *, started_since: datetime) -> InFlight:
        in_flight = _status_is([str(s) for s in IN_FLIGHT_STATUSES], pads=self._pads)
        # `message IS NOT NULL` first: a hand-written Pending row has none, and NOT (... LIKE NULL) is
        # NULL, which would leave it out of the count and let a queue pass its limit.
        held_by_kueue = sa.and_(
            task.c.status == str(TaskStatus.PENDING),
            task.c.message.is_not(None),
            task.c.message.like(KUEUE_QUEUED_PREFIX + "%"),
        )
        recent = sa.case((task.c.started_at >= started_since, 1), else_=0)
        query = (
            sa.select(task.c.queue, task.c.user_id, sa.func.count(), sa.func.sum(recent))
            .where(in_flight, sa.not_(held_by_kueue))
            .group_by(task.c.queue, task.c.user_id)
        )

        def run(conn: Connection) -> InFlight:
            counts: dict[tuple[str | None, int], int] = {}
            started: dict[str | None, int] = {}
            for queue, user, n, fresh in conn.execute(query):
                key = (queue, int(user or 0))
                counts[key] = counts.get(key, 0) + int(n)
                started[queue] = started.get(queue, 0) + int(fresh or 0)
            return InFlight(counts, started)

        return self._run(run, "count in-flight tasks")

    def count_ready_ahead(
        self,
        task_: Task,
        *,
        namespaces: frozenset[str] = frozenset(),
        users: frozenset[int] = frozenset(),
    ) -> int:
        ready = sa.and_(_status_is([str(TaskStatus.NORMAL)], pads=self._pads), task.c.next_attempt_at.is_(None))
        ahead = sa.or_(
            task.c.priority > task_.priority, sa.and_(task.c.priority == task_.priority, task.c.id < task_.id)
        )
        query = sa.select(sa.func.count()).select_from(task).where(ready, ahead)
        if namespaces:
            query = query.where(task.c.namespace.in_(sorted(namespaces)))
        if users:
            query = query.where(task.c.user_id.in_(sorted(users)))
        return self._run(lambda conn: int(conn.execute(query).scalar_one()), f"position of task {task_.id}")

    def list_come_due(self, now: datetime, *, limit: int = 500) -> list[Task]:
        if limit <= 0:
            return []
        due = task.c.next_attempt_at
        query = (
            sa.select(*TASK_COLUMNS)
            .where(_status_is([str(TaskStatus.NORMAL)], pads=self._pads), due.is_not(None), due <= now)
            .order_by(due, task.c.id)
            .limit(limit)
        )
        # Unreadable rows are skipped, not read past: the next tick reads the same earliest rows, and
        # one page of due tasks per tick is all dispatch takes from this end.
        return self._run(lambda conn: to_tasks(conn.execute(query)), "list tasks come due")

    def list_cancel_requested(self, *, limit: int = 500) -> list[Task]:
        if limit <= 0:
            return []
        match = sa.and_(task.c.cancel_requested == sa.true(), _status_is(_ACTIVE, pads=self._pads))

        def page(after: int, size: int) -> sa.Select[Any]:
            return sa.select(*TASK_COLUMNS).where(match, task.c.id > after).order_by(task.c.id).limit(size)

        return self._run(lambda conn: _readable(conn, page, 0, limit), "list cancel requests")

    def count_by_status(self, *, user_id: int | None = None) -> Mapping[str, int]:
        # Grouped by length too: under PAD SPACE a hand-written 'Normal ' would join the 'Normal' group
        # and hide from the unknown-status metric.
        query = sa.select(task.c.status, sa.func.count()).group_by(task.c.status, sa.func.length(task.c.status))
        if user_id is not None:
            query = query.where(_user_is(user_id))
        return self._run(lambda conn: {str(s): int(n) for s, n in conn.execute(query)}, "count tasks")

    def count_waiting_retry(self) -> int:
        # A retry always sets a not-before time, so the (status, next_attempt_at, id) index narrows this
        # to the tasks that wait for a time, not every Normal row.
        query = sa.select(sa.func.count()).where(
            _status_is([str(TaskStatus.NORMAL)], pads=self._pads),
            task.c.next_attempt_at.is_not(None),
            task.c.attempt > 1,
        )
        return self._run(lambda conn: int(conn.execute(query).scalar_one()), "count tasks waiting for a retry")

    # -- writes --------------------------------------------------------------------------------
    def add(self, new: NewTask, now: datetime) -> Task:
        if self.engine.dialect.name == "postgresql":
            # Submissions cannot carry one (names are DNS labels, info is JSON); a caller of the port can.
            for field, value in (("name", new.name), ("namespace", new.namespace), ("info", new.info)):
                if "\x00" in value:
                    raise PermanentError(f"task {field} contains a NUL character, which PostgreSQL cannot store")
        values: dict[str, Any] = {
            "name": new.name,
            "namespace": new.namespace,
            "info": new.info,
            "status": str(TaskStatus.NORMAL),
            "user_id": new.user_id,
            "message": "",
            "version": 0,
            "cancel_requested": False,
            "run_at": new.run_at,
            "next_attempt_at": new.run_at,
            "schedule_id": new.schedule_id,
            "slot_at": new.slot_at,
            "priority": new.priority,
            "created_at": now,
            "updated_at": now,
        }

        def run(conn: Connection) -> Task:
            try:
                result = conn.execute(sa.insert(task).values(values))
            except exc.IntegrityError as error:
                if is_duplicate_key(error):
                    raise DuplicateTask(
                        f"a task named {new.name!r} already exists in namespace {new.namespace!r}"
                    ) from error
                raise
            key = result.inserted_primary_key
            if key is None or key[0] is None:
                raise exc.InvalidRequestError("the database returned no id for the new task")
            conn.execute(
                sa.insert(task_event).values(
                    task_id=int(key[0]),
                    at=now,
                    attempt=1,
                    from_status=None,
                    to_status=str(TaskStatus.NORMAL),
                    message="submitted",
                )
            )
            return new.stored_as(TaskId(int(key[0])), now)

        return self._run(run, f"add task {new.namespace}/{new.name}")

    def apply(self, changes: Sequence[StatusChange], *, epoch: int) -> WriteResult:
        if not changes:
            return WriteResult()

        def run(conn: Connection) -> WriteResult:
            now = self._clock()
            applied: list[TaskId] = []
            lost: list[TaskId] = []
            for chunk in chunks(changes):
                sql, params = cas_update(chunk, epoch=epoch, now=now, dialect=conn.dialect)
                matched = conn.exec_driver_sql(sql, params).rowcount
                if matched == len(chunk):
                    applied.extend(c.task_id for c in chunk)
                    self._record(conn, chunk, epoch)
                    record_events(conn, chunk)
                    continue
                rows = conn.execute(outcome_query(chunk)).all()
                current = int(rows[0].epoch) if rows else None
                if current != epoch:
                    raise _Superseded(current if current is not None else -1)
                won = _winners(chunk, rows, now)
                applied.extend(c.task_id for c in chunk if c.task_id in won)
                lost.extend(c.task_id for c in chunk if c.task_id not in won)
                self._record(conn, [c for c in chunk if c.task_id in won], epoch)
                record_events(conn, [c for c in chunk if c.task_id in won])
            return WriteResult(tuple(applied), tuple(lost))

        try:
            return self._run(run, f"apply {len(changes)} status changes")
        except _Superseded as superseded:
            raise LeadershipLost(f"fencing epoch {epoch} was superseded by {superseded.current}") from None

    @staticmethod
    def _record(conn: Connection, won: Sequence[StatusChange], epoch: int | None) -> None:
        """The history rows of the changes that won, in the write's own transaction (one INSERT,
        stamped with the batch's `now` through the rows' `updated_at`)."""
        if won:
            sql, params = event_insert(won, epoch=epoch, dialect=conn.dialect)
            conn.exec_driver_sql(sql, params)

    def list_events(self, task_id: TaskId, *, limit: int = 200) -> list[TaskEvent]:
        if limit <= 0:
            return []
        # The newest `limit` by the (task_id, id) index, handed out oldest first.
        query = (
            sa.select(task_event).where(task_event.c.task_id == task_id).order_by(task_event.c.id.desc()).limit(limit)
        )

        def run(conn: Connection) -> list[TaskEvent]:
            return [_to_event(row) for row in reversed(conn.execute(query).all())]

        return self._run(run, f"list events of task {task_id}")

    def request_cancel(self, task_id: TaskId) -> Task:
        def run(conn: Connection) -> Task:
            # Update first, so a SQLite transaction takes the write lock up front (no upgrade race).
            conn.execute(
                sa.update(task)
                .where(task.c.id == task_id, task.c.status.notin_([str(s) for s in TERMINAL_STATUSES]))
                .values(cancel_requested=True, updated_at=self._clock())
            )
            row = conn.execute(sa.select(*TASK_COLUMNS).where(task.c.id == task_id)).first()
            if row is None:
                raise TaskNotFound(f"no task with id {task_id}")
            found = to_task(row)
            if found.is_terminal:
                raise InvalidTransition(f"task {task_id} is already {found.status}")
            return found

        return self._run(run, f"request cancel of task {task_id}")

    def advance_epoch(self) -> int:
        def run(conn: Connection) -> int:
            # The UPDATE locks the row until commit, so the SELECT reads our own increment.
            bump = sa.update(leader_epoch).where(leader_epoch.c.id == EPOCH_ROW_ID)
            if conn.execute(bump.values(epoch=leader_epoch.c.epoch + 1)).rowcount == 0:
                # A database made without `db init`: create the row (a racing creator makes this
                # INSERT fail with a duplicate key, and the retry then increments).
                conn.execute(sa.insert(leader_epoch).values(id=EPOCH_ROW_ID, epoch=1))
            value = conn.execute(sa.select(leader_epoch.c.epoch).where(leader_epoch.c.id == EPOCH_ROW_ID)).scalar_one()
            return int(value)

        return self._run(run, "advance the fencing epoch")

    # -- plumbing ------------------------------------------------------------------------------
    def _run(self, work: Callable[[Connection], T], what: str) -> T:
        """`work` in one transaction (committed on return, rolled back on any exception), retried."""

        def attempt() -> T:
            with self.engine.begin() as conn:
                return work(conn)

        return with_retry(attempt, what=what, policy=self._retry)


def _to_event(row: sa.Row[Any]) -> TaskEvent:
    return TaskEvent(
        task_id=TaskId(int(row.task_id)),
        at=row.at,
        attempt=int(row.attempt or 1),
        from_status=row.from_status,
        to_status=str(row.to_status),
        job_name=row.job_name,
        failure_class=str(row.failure_class or ""),
        reason=str(row.reason or ""),
        message=str(row.message or ""),
        epoch=None if row.epoch is None else int(row.epoch),
        id=int(row.id),
    )


_SKIP_SCAN_STEPS = 900
"""Users one recursive skip-scan statement finds at most (below MariaDB's default recursion cap)."""

_READY_USER_PROBE = {
    False: "SELECT MIN(t.user_id) FROM task t WHERE t.status = :normal{pad_t}"
    " AND t.next_attempt_at IS NULL AND t.user_id > {after}",
    True: "SELECT t.user_id FROM task t WHERE t.status = :normal"
    " AND t.next_attempt_at IS NULL AND t.user_id > {after} ORDER BY t.next_attempt_at, t.user_id LIMIT 1",
}
"""The next user with ready work. On PostgreSQL (True) as ORDER BY ... LIMIT 1 over the index's own
columns: MIN(user_id) there walks (user_id, id) through the user's finished rows (docs/queues.md)."""


def _steers(conn: Connection) -> bool:
    """PostgreSQL, whose planner needs next_attempt_at (NULL throughout) in a ready read's ORDER BY:
    ordered by id alone, it walks the primary key through every finished row, taking the ready ones
    to be spread evenly over the ids. MariaDB, given it, sorts (it does not take IS NULL as a
    constant for the order); SQLite needs neither."""
    return conn.dialect.name == "postgresql"


def _ready_order(conn: Connection, *columns: sa.ColumnElement[Any]) -> tuple[sa.ColumnElement[Any], ...]:
    return (task.c.next_attempt_at, *columns) if _steers(conn) else columns


_PAD_T = " AND LENGTH(t.status) = :normal_length"
_PAD = " AND LENGTH(status) = :normal_length"
"""The PAD SPACE guard of `_status_is` in the hand-written statements (MySQL and MariaDB only)."""


@functools.cache
def _ready_users_query(from_lowest: bool, pads: bool, steers: bool) -> sa.TextClause:
    """The skip scan from the lowest user (`from_lowest`) or after :after; `pads`: MySQL/MariaDB;
    `steers`: PostgreSQL."""
    pad_t = _PAD_T if pads else ""
    probe = _READY_USER_PROBE[steers].replace("{pad_t}", pad_t)
    first = probe.replace(" AND t.user_id > {after}", "") if from_lowest else probe.format(after=":after")
    return sa.text(
        "WITH RECURSIVE ready_users(user_id, step) AS ("
        f" SELECT ({first}), 1"
        f" UNION ALL SELECT ({probe.format(after='r.user_id')}), r.step + 1"
        " FROM ready_users r WHERE r.user_id IS NOT NULL AND r.step < :steps"
        ") SELECT user_id FROM ready_users WHERE user_id IS NOT NULL ORDER BY user_id"
    )


def _pads(conn: Connection) -> bool:
    return conn.dialect.name in ("mysql", "mariadb")


def _skip_params(after: int | None, steps: int, pads: bool) -> dict[str, Any]:
    normal = str(TaskStatus.NORMAL)
    params: dict[str, Any] = {"normal": normal, "steps": steps}
    if pads:
        params["normal_length"] = len(normal)
    if after is not None:
        params["after"] = after
    return params


_USERS_PER_STATEMENT = 100
_ARMS_STEP = 10
"""A heads statement has a multiple of this many arms (at most _USERS_PER_STATEMENT): a few texts."""

_TASK_COLUMN_LIST = ", ".join(c.name for c in TASK_COLUMNS)


@functools.cache
def _heads_query(users: int, pads: bool, steers: bool) -> sa.TextualSelect:
    """Each of `users` users' oldest :per_user ready tasks (binds :u0 .. :u<users-1>)."""
    order = "next_attempt_at, id" if steers else "id"
    arm = (
        f"SELECT {_TASK_COLUMN_LIST} FROM (SELECT {_TASK_COLUMN_LIST} FROM task"
        f" WHERE status = :normal{_PAD if pads else ''} AND next_attempt_at IS NULL"
        f" AND user_id = :u{{i}} ORDER BY {order} LIMIT :per_user) AS heads_{{i}}"
    )
    return sa.text(" UNION ALL ".join(arm.format(i=i) for i in range(users))).columns(*TASK_COLUMNS)


"""Per-user head queries joined by UNION ALL in one statement."""


def _next_priority(conn: Connection, ready: sa.ColumnElement[bool], below: int | None) -> int | None:
    """The highest priority among ready tasks (below `below`), or None: one index probe.

    Written as ORDER BY ... DESC LIMIT 1, not MAX(): both MariaDB and PostgreSQL read every entry of
    the range for MAX() here (the IS NULL in the index prefix stops their MIN/MAX shortcut), while
    this one walks the index backwards and stops at the first row (docs/queues.md)."""
    query = sa.select(task.c.priority).where(ready)
    if below is not None:
        query = query.where(task.c.priority < below)
    order = _ready_order(conn, task.c.priority)
    query = query.order_by(*(column.desc() for column in order)).limit(1)
    found = conn.execute(query).scalar()
    return None if found is None else int(found)


def _row_id(row: sa.Row[Any]) -> int:
    return int(row.id)


def _status_is(statuses: Sequence[str], *, pads: bool) -> sa.ColumnElement[bool]:
    """`status` is exactly one of `statuses`.

    MySQL and MariaDB compare VARCHARs with PAD SPACE, even under utf8mb4_bin: a hand-written
    'Normal ' equals 'Normal'. Such a row would be selected, found unreadable and skipped, on every
    tick. There (`pads`) a length check makes the comparison exact, and the index still serves it.
    PostgreSQL and SQLite compare exactly already, and on PostgreSQL the check would cost the index:
    its planner guesses 0.5% of rows match a function's equality, and with 100,000 Normal rows chose
    a sequential scan over the (status, next_attempt_at, id) index for dispatch's read.
    """
    exact = [
        sa.and_(task.c.status == s, sa.func.length(task.c.status) == len(s)) if pads else task.c.status == s
        for s in sorted(set(statuses))
    ]
    return exact[0] if len(exact) == 1 else sa.or_(*exact)


def _readable(conn: Connection, page: Callable[[int, int], sa.Select[Any]], after_id: int, limit: int) -> list[Task]:
    """Up to `limit` readable tasks from `page(after, size)` (rows in id order), reading on past
    rows that cannot be tasks: callers take a short page for the end of the listing, so a page
    thinned by unreadable rows would hide every row behind them (a page of them, all rows)."""
    tasks: list[Task] = []
    after = after_id
    while True:
        size = limit - len(tasks)
        rows = conn.execute(page(after, size)).all()
        tasks.extend(to_tasks(rows))
        if len(rows) < size or len(tasks) >= limit:
            return tasks
        after = _row_id(rows[-1])


def _user_is(user_id: int) -> sa.ColumnElement[bool]:
    # A NULL user_id (a row written by hand) reads as user 0, so user 0's filter includes it.
    if user_id == 0:
        return sa.or_(task.c.user_id == 0, task.c.user_id.is_(None))
    return task.c.user_id == user_id


def _winners(chunk: Sequence[StatusChange], rows: Sequence[sa.Row[Any]], now: datetime) -> set[int]:
    """Task ids whose row now shows this change: version moved by one to the new status, stamped
    with this batch's `now` (which tells our write from an identical one by someone else)."""
    by_id = {int(r.id): r for r in rows if r.id is not None}
    won: set[int] = set()
    for c in chunk:
        row = by_id.get(c.task_id)
        if (
            row is not None
            and row.status == str(c.status)
            and int(row.version) == c.expected_version + 1
            and row.updated_at == now
        ):
            won.add(c.task_id)
    return won
