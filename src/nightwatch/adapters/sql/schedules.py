"""`SqlScheduleRepository`: the ScheduleRepository port on SQLAlchemy Core, beside the task table.

`fire` is the spawner's one write: in one transaction it moves the schedule's bookkeeping by
compare-and-set on its version, conditional on the fencing epoch (the statement `batch.py` uses for
status writes: on InnoDB the EXISTS subquery holds a shared lock on the epoch row until commit, on
PostgreSQL it says FOR SHARE, so a successor's `advance_epoch` waits for a step in progress), and
inserts each slot's task as

    INSERT INTO task (...) SELECT :values FROM leader_epoch WHERE id = 1 AND epoch = :epoch
      AND NOT EXISTS (a task of this schedule and slot) AND NOT EXISTS (a task of this name here)

The unique key (schedule_id, slot_at) is the backstop: whatever the interleaving, a slot has one row.
Should a row for the slot appear between the NOT EXISTS and the INSERT (a `trigger` in the same
second), the key refuses it, the whole step rolls back (a PermanentError from the retry helper, which
the spawner logs for that schedule alone), and the next tick re-plans from the committed rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Connection, Engine

from nightwatch.adapters.sql.retry import DbRetry, is_duplicate_key, with_retry
from nightwatch.adapters.sql.tables import EPOCH_ROW_ID, UtcDateTime, leader_epoch, schedule, task
from nightwatch.domain.errors import DuplicateSchedule, LeadershipLost, ScheduleNotFound
from nightwatch.domain.model import TaskId, TaskStatus
from nightwatch.domain.ports import FireResult, NewSchedule, NewTask, SlotFiring
from nightwatch.domain.schedules import Concurrency, Schedule, ScheduleId

log = logging.getLogger(__name__)

T = TypeVar("T")

_IN_FLIGHT = [str(TaskStatus.NORMAL), str(TaskStatus.PENDING), str(TaskStatus.RUNNING)]


class _Superseded(Exception):
    def __init__(self, current: int) -> None:
        super().__init__(current)
        self.current = current


class SqlScheduleRepository:
    def __init__(self, engine: Engine, *, retry: DbRetry | None = None) -> None:
        self.engine = engine
        self._retry = retry or DbRetry()

    def add(self, new: NewSchedule, now: datetime) -> Schedule:
        values: dict[str, Any] = {
            "name": new.name,
            "namespace": new.namespace,
            "user_id": new.user_id,
            "info": new.info,
            "cron": new.cron,
            "timezone": new.timezone,
            "concurrency": str(new.concurrency),
            "starting_deadline_seconds": new.starting_deadline_seconds,
            "catch_up": new.catch_up,
            "keep": new.keep,
            "suspended": False,
            "version": 0,
            "created_at": now,
            "updated_at": now,
            "last_slot_at": now,
            "fired": 0,
            "missed": 0,
            "skipped": 0,
        }

        def run(conn: Connection) -> Schedule:
            try:
                result = conn.execute(sa.insert(schedule).values(values))
            except exc.IntegrityError as error:
                if is_duplicate_key(error):
                    raise DuplicateSchedule(
                        f"a schedule named {new.name!r} already exists in namespace {new.namespace!r}"
                    ) from error
                raise
            key = result.inserted_primary_key
            if key is None or key[0] is None:
                raise exc.InvalidRequestError("the database returned no id for the new schedule")
            return self._one(conn, schedule.c.id == int(key[0]), f"with id {key[0]}")

        return self._run(run, f"add schedule {new.namespace}/{new.name}")

    def get(self, schedule_id: ScheduleId) -> Schedule:
        return self._run(
            lambda conn: self._one(conn, schedule.c.id == schedule_id, f"with id {schedule_id}"), "get schedule"
        )

    def find(self, namespace: str, name: str) -> Schedule:
        where = sa.and_(schedule.c.namespace == namespace, schedule.c.name == name)
        return self._run(
            lambda conn: self._one(conn, where, f"named {name!r} in namespace {namespace!r}"), "find schedule"
        )

    def list_schedules(
        self, *, user_id: int | None = None, suspended: bool | None = None, limit: int = 500
    ) -> list[Schedule]:
        if limit <= 0:
            return []
        query = sa.select(schedule).order_by(schedule.c.id).limit(limit)
        if user_id is not None:
            query = query.where(schedule.c.user_id == user_id)
        if suspended is not None:
            query = query.where(schedule.c.suspended == (sa.true() if suspended else sa.false()))

        def run(conn: Connection) -> list[Schedule]:
            found = []
            for row in conn.execute(query):
                try:
                    found.append(_to_schedule(row))
                except (ValueError, TypeError) as error:
                    # A row written by hand with a bad value: skipped, never the whole listing.
                    log.warning("skipping unreadable schedule row %s: %s", row.id, error)
            return found

        return self._run(run, "list schedules")

    def set_suspended(self, schedule_id: ScheduleId, suspended: bool, now: datetime) -> Schedule:
        def run(conn: Connection) -> Schedule:
            if not suspended:
                # Resuming hands over every slot of the pause as handled: they do not run. A statement
                # of its own: MySQL evaluates SET left to right, so a CASE on `suspended` after it is
                # assigned would read the new value.
                conn.execute(
                    sa.update(schedule)
                    .where(
                        schedule.c.id == schedule_id, schedule.c.suspended == sa.true(), schedule.c.last_slot_at < now
                    )
                    .values(last_slot_at=now)
                )
            conn.execute(
                sa.update(schedule)
                .where(schedule.c.id == schedule_id)
                .values(suspended=suspended, version=schedule.c.version + 1, updated_at=now)
            )
            return self._one(conn, schedule.c.id == schedule_id, f"with id {schedule_id}")

        return self._run(run, f"{'pause' if suspended else 'resume'} schedule {schedule_id}")

    def delete(self, schedule_id: ScheduleId) -> None:
        def run(conn: Connection) -> None:
            if conn.execute(sa.delete(schedule).where(schedule.c.id == schedule_id)).rowcount == 0:
                raise ScheduleNotFound(f"no schedule with id {schedule_id}")

        self._run(run, f"delete schedule {schedule_id}")

    def in_flight(self, schedule_id: ScheduleId, *, limit: int = 100) -> list[TaskId]:
        query = (
            sa.select(task.c.id)
            .where(task.c.schedule_id == schedule_id, task.c.status.in_(_IN_FLIGHT))
            .order_by(task.c.id)
            .limit(limit)
        )
        return self._run(lambda conn: [TaskId(int(i)) for i in conn.execute(query).scalars()], "list in-flight tasks")

    def fire(self, firing: SlotFiring, *, epoch: int, now: datetime) -> FireResult:
        def run(conn: Connection) -> FireResult:
            fenced = sa.exists(
                _epoch_is(epoch).with_for_update(read=True) if conn.dialect.name == "postgresql" else _epoch_is(epoch)
            )
            values: dict[str, Any] = {
                "last_slot_at": firing.last_slot_at,
                "fired": schedule.c.fired + firing.fired,
                "missed": schedule.c.missed + firing.missed,
                "skipped": schedule.c.skipped + firing.skipped,
                "version": schedule.c.version + 1,
                "updated_at": now,
            }
            if firing.last_fired_at is not None:
                values["last_fired_at"] = firing.last_fired_at
            moved = conn.execute(
                sa.update(schedule)
                .where(schedule.c.id == firing.schedule_id, schedule.c.version == firing.expected_version, fenced)
                .values(values)
            ).rowcount
            if moved != 1:
                current = conn.execute(
                    sa.select(leader_epoch.c.epoch).where(leader_epoch.c.id == EPOCH_ROW_ID)
                ).scalar_one_or_none()
                if current is None or int(current) != epoch:
                    raise _Superseded(int(current) if current is not None else -1)
                return FireResult(applied=False)
            inserted: list[TaskId] = []
            not_inserted: list[datetime] = []
            for new in firing.tasks:
                task_id = _insert(conn, _fenced_insert(new, epoch, now), new)
                if task_id is not None:
                    inserted.append(task_id)
                else:
                    not_inserted.append(new.slot_at or now)
            return FireResult(applied=True, inserted=tuple(inserted), not_inserted=tuple(not_inserted))

        try:
            return self._run(run, f"fire schedule {firing.schedule_id}")
        except _Superseded as superseded:
            raise LeadershipLost(f"fencing epoch {epoch} was superseded by {superseded.current}") from None

    # -- plumbing ------------------------------------------------------------------------------
    def _one(self, conn: Connection, where: sa.ColumnElement[bool], what: str) -> Schedule:
        row = conn.execute(sa.select(schedule).where(where)).first()
        if row is None:
            raise ScheduleNotFound(f"no schedule {what}")
        return _to_schedule(row)

    def _run(self, work: Callable[[Connection], T], what: str) -> T:
        def attempt() -> T:
            with self.engine.begin() as conn:
                return work(conn)

        return with_retry(attempt, what=what, policy=self._retry)


def _insert(conn: Connection, statement: sa.Insert, new: NewTask) -> TaskId | None:
    """Run one fenced INSERT ... SELECT; the new row's id, or None when it inserted nothing.

    RETURNING where the server has it (PostgreSQL, MariaDB 10.5+, SQLite 3.35+): psycopg reports no
    row count for an INSERT ... SELECT through SQLAlchemy. MySQL has no RETURNING but a row count."""
    if conn.dialect.insert_returning:
        found = conn.execute(statement.returning(task.c.id)).scalars().all()
        return TaskId(int(found[0])) if found else None
    if conn.execute(statement).rowcount != 1:
        return None
    same_slot = sa.select(task.c.id).where(task.c.schedule_id == new.schedule_id, task.c.slot_at == new.slot_at)
    return TaskId(int(conn.execute(same_slot).scalar_one()))


def _epoch_is(epoch: int) -> sa.Select[Any]:
    return (
        sa.select(sa.literal(1))
        .select_from(leader_epoch)
        .where(leader_epoch.c.id == EPOCH_ROW_ID, leader_epoch.c.epoch == epoch)
    )


def _fenced_insert(new: NewTask, epoch: int, now: datetime) -> sa.Insert:
    values: dict[str, tuple[Any, sa.types.TypeEngine[Any]]] = {
        "name": (new.name, sa.String()),
        "namespace": (new.namespace, sa.String()),
        "info": (new.info, sa.Text()),
        "status": (str(TaskStatus.NORMAL), sa.String()),
        "user_id": (new.user_id, sa.BigInteger()),
        "message": ("", sa.Text()),
        "version": (0, sa.BigInteger()),
        "cancel_requested": (False, sa.Boolean()),
        "run_at": (new.run_at, UtcDateTime()),
        "next_attempt_at": (new.run_at, UtcDateTime()),
        "schedule_id": (new.schedule_id, sa.BigInteger()),
        "slot_at": (new.slot_at, UtcDateTime()),
        "created_at": (now, UtcDateTime()),
        "updated_at": (now, UtcDateTime()),
    }
    same_slot = sa.select(task.c.id).where(task.c.schedule_id == new.schedule_id, task.c.slot_at == new.slot_at)
    same_name = sa.select(task.c.id).where(task.c.name == new.name, task.c.namespace == new.namespace)
    source = (
        sa.select(*[sa.literal(value, type_).label(name) for name, (value, type_) in values.items()])
        .select_from(leader_epoch)
        .where(
            leader_epoch.c.id == EPOCH_ROW_ID,
            leader_epoch.c.epoch == epoch,
            ~sa.exists(same_slot),
            ~sa.exists(same_name),
        )
    )
    return sa.insert(task).from_select(list(values), source)


def _to_schedule(row: sa.Row[Any]) -> Schedule:
    m = row._mapping
    return Schedule(
        id=ScheduleId(int(m["id"])),
        name=str(m["name"]),
        namespace=str(m["namespace"]),
        info=str(m["info"]),
        cron=str(m["cron"]),
        timezone=str(m["timezone"]),
        user_id=int(m["user_id"] or 0),
        concurrency=Concurrency(m["concurrency"]),
        starting_deadline_seconds=(
            int(m["starting_deadline_seconds"]) if m["starting_deadline_seconds"] is not None else None
        ),
        catch_up=int(m["catch_up"]),
        keep=int(m["keep"]),
        suspended=bool(m["suspended"]),
        version=int(m["version"]),
        created_at=_when(m["created_at"]),
        last_slot_at=_when(m["last_slot_at"]),
        last_fired_at=_when(m["last_fired_at"]),
        fired=int(m["fired"]),
        missed=int(m["missed"]),
        skipped=int(m["skipped"]),
    )


def _when(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    raise ValueError(f"not a time: {value!r}")
