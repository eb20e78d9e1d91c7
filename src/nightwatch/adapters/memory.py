"""In-memory adapters for every port: shipped code, usable by anyone's tests and by demos.

They keep the same rules as the real adapters (compare-and-set, fencing, idempotent launch,
lease expiry) and expose their state for inspection; they are thread-safe.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from nightwatch.domain.errors import (
    DuplicateSchedule,
    DuplicateTask,
    ForeignJob,
    InvalidTransition,
    LeadershipLost,
    LogsUnavailable,
    NightwatchError,
    ScheduleNotFound,
    TaskNotFound,
)
from nightwatch.domain.jobspec import JobSpec, LaunchRequest
from nightwatch.domain.model import (
    IN_FLIGHT_STATUSES,
    TERMINAL_STATUSES,
    StatusChange,
    Task,
    TaskEvent,
    TaskId,
    TaskStatus,
)
from nightwatch.domain.notifications import DeliveryOutcome, DeliveryState, OutboxEntry, event_of
from nightwatch.domain.observation import KUEUE_QUEUED_PREFIX, JobObservation, JobPhase
from nightwatch.domain.ports import (
    FireResult,
    JobRef,
    LaunchResult,
    LogCapture,
    NewSchedule,
    NewTask,
    SlotFiring,
    StoredLog,
    TaskFilter,
    TaskPage,
    TaskSummary,
    WriteResult,
)
from nightwatch.domain.queues import InFlight
from nightwatch.domain.schedules import Schedule, ScheduleId


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)


class MemoryTaskRepository:
    def __init__(self) -> None:
        self._rows: dict[TaskId, Task] = {}
        self._next_id = 1
        self._epoch = 0
        self._lock = threading.Lock()
        self.write_batches = 0
        """How many `apply` calls reached the store (for tests of batching)."""
        self.slots: dict[TaskId, tuple[int, datetime]] = {}
        """(schedule id, slot) of each task a schedule made: the task table's two columns."""
        self.events: list[TaskEvent] = []
        """Every task's history, in the order it was written."""
        self.now: datetime | None = None
        """The time `apply` stamps events with (None: the time of the change's own fields, else now)."""
        self.outbox: dict[int, OutboxEntry] = {}
        """The events `apply` recorded (see `MemoryOutbox`), by entry id."""
        self.log_pending: set[int] = set()
        """Outbox entries whose output is still to capture (see `MemoryTaskLogs`)."""
        self.logs: dict[tuple[TaskId, int], StoredLog] = {}
        self._next_entry = 1

    def add(self, task: NewTask, now: datetime) -> Task:
        with self._lock:
            return self._add(task, now)

    def _add(self, task: NewTask, now: datetime) -> Task:
        """`add` with the lock held (the schedule store inserts a slot's task under it too)."""
        if any(t.name == task.name and t.namespace == task.namespace for t in self._rows.values()):
            raise DuplicateTask(f"a task named {task.name!r} already exists in namespace {task.namespace!r}")
        origin = (task.schedule_id, task.slot_at) if task.schedule_id is not None and task.slot_at else None
        if origin is not None and origin in self.slots.values():
            raise DuplicateTask(f"schedule {task.schedule_id} has a task for slot {task.slot_at} already")
        row = task.stored_as(TaskId(self._next_id), now)
        self._next_id += 1
        self._rows[row.id] = row
        if origin is not None:
            self.slots[row.id] = (int(origin[0]), origin[1])
        self._event(TaskEvent(row.id, now, 1, None, str(TaskStatus.NORMAL), message="submitted"))
        return row.copy()

    def get(self, task_id: TaskId) -> Task:
        with self._lock:
            row = self._rows.get(task_id)
            if row is None:
                raise TaskNotFound(f"no task with id {task_id}")
            return row.copy()

    def list_by_status(self, statuses: Sequence[TaskStatus], *, after_id: int = 0, limit: int = 500) -> list[Task]:
        wanted = set(statuses)
        with self._lock:
            rows = sorted((t for t in self._rows.values() if t.status in wanted and t.id > after_id), key=_by_id)
            return [t.copy() for t in rows[:limit]]

    def list_newest(self, where: TaskFilter, *, before_id: int | None = None, limit: int = 50) -> TaskPage:
        with self._lock:
            rows = sorted(
                (
                    t
                    for t in self._rows.values()
                    if _matches(t, where)
                    and (before_id is None or t.id < before_id)
                    and (where.schedule_id is None or self.slots.get(t.id, (None,))[0] == where.schedule_id)
                ),
                key=_by_id,
                reverse=True,
            )
            page = tuple(TaskSummary.of(t) for t in rows[: max(limit, 0)])
            more = len(rows) > len(page) and bool(page)
            return TaskPage(page, page[-1].id if more else None)

    def list_ready(self, *, after_id: int = 0, after_priority: int | None = None, limit: int = 500) -> list[Task]:
        def after(t: Task) -> bool:
            if after_priority is None:
                return t.id > after_id
            return t.priority < after_priority or (t.priority == after_priority and t.id > after_id)

        with self._lock:
            rows = sorted((t for t in self._rows.values() if _is_ready(t) and after(t)), key=_by_rank)
            return [t.copy() for t in rows[: max(limit, 0)]]

    def list_ready_users(self, *, after_user: int | None = None, limit: int = 1000) -> list[int]:
        with self._lock:
            users = sorted(
                {
                    t.user_id
                    for t in self._rows.values()
                    if _is_ready(t) and (after_user is None or t.user_id > after_user)
                }
            )
            return users[: max(limit, 0)]

    def list_ready_of_users(self, user_ids: Sequence[int], *, per_user: int) -> list[Task]:
        wanted = set(user_ids)
        taken: Counter[int] = Counter()
        found: list[Task] = []
        with self._lock:
            for t in sorted(self._rows.values(), key=_by_id):
                if t.user_id in wanted and _is_ready(t) and taken[t.user_id] < per_user:
                    taken[t.user_id] += 1
                    found.append(t.copy())
            return found

    def count_in_flight(self, *, started_since: datetime) -> InFlight:
        counts: Counter[tuple[str | None, int]] = Counter()
        started: Counter[str | None] = Counter()
        with self._lock:
            for t in self._rows.values():
                if t.status not in IN_FLIGHT_STATUSES:
                    continue
                if t.status is TaskStatus.PENDING and t.message.startswith(KUEUE_QUEUED_PREFIX):
                    continue
                counts[(t.queue, t.user_id)] += 1
                if t.started_at is not None and t.started_at >= started_since:
                    started[t.queue] += 1
            return InFlight(dict(counts), dict(started))

    def count_ready_ahead(
        self,
        task: Task,
        *,
        namespaces: frozenset[str] = frozenset(),
        users: frozenset[int] = frozenset(),
    ) -> int:
        with self._lock:
            return sum(
                1
                for t in self._rows.values()
                if _is_ready(t)
                and _by_rank(t) < _by_rank(task)
                and (not namespaces or t.namespace in namespaces)
                and (not users or t.user_id in users)
            )

    def list_come_due(self, now: datetime, *, limit: int = 500) -> list[Task]:
        with self._lock:
            rows = sorted(
                (
                    t
                    for t in self._rows.values()
                    if _is_normal(t) and t.next_attempt_at is not None and t.next_attempt_at <= now
                ),
                key=lambda t: (t.next_attempt_at, t.id),
            )
            return [t.copy() for t in rows[: max(limit, 0)]]
    def get_many(self, task_ids: Collection[TaskId], *, statuses: Collection[TaskStatus] | None = None) -> list[Task]:
        wanted = None if statuses is None else set(statuses)
        with self._lock:
            rows = (self._rows.get(TaskId(i)) for i in set(task_ids))
            found = sorted((t for t in rows if t is not None and (wanted is None or t.status in wanted)), key=_by_id)
            return [t.copy() for t in found]

    def list_cancel_requested(self, *, limit: int = 500) -> list[Task]:
        with self._lock:
            rows = sorted(
                (t for t in self._rows.values() if t.cancel_requested and t.status not in TERMINAL_STATUSES),
                key=_by_id,
            )
            return [t.copy() for t in rows[:limit]]

    def apply(self, changes: Sequence[StatusChange], *, epoch: int) -> WriteResult:
        with self._lock:
            if epoch != self._epoch:
                raise LeadershipLost(f"fencing epoch {epoch} was superseded by {self._epoch}")
            self.write_batches += 1
            applied: list[TaskId] = []
            lost: list[TaskId] = []
            for change in changes:
                row = self._rows.get(change.task_id)
                if row is None or row.status != change.expected_status or row.version != change.expected_version:
                    lost.append(change.task_id)
                    continue
                row.apply(change)
                applied.append(change.task_id)
                self._event(TaskEvent.of(change, self.now or datetime.now(UTC), epoch))
                self._record_event(change)
            return WriteResult(tuple(applied), tuple(lost))

    def _event(self, event: TaskEvent) -> None:
        self.events.append(replace(event, id=len(self.events) + 1))

    def list_events(self, task_id: TaskId, *, limit: int = 200) -> list[TaskEvent]:
        with self._lock:
            mine = [e for e in self.events if e.task_id == task_id]
            return mine[-limit:] if limit > 0 else []

    def _record_event(self, change: StatusChange) -> None:
        # As the SQL adapter's outbox insert: in the same critical section as the status write.
        event = event_of(change)
        if event is None:
            return
        entry_id, self._next_entry = self._next_entry, self._next_entry + 1
        now = change.finished_at or datetime.now(UTC)
        self.outbox[entry_id] = OutboxEntry(entry_id, change.task_id, change.attempt, event, change.message, now)
        if change.status.is_terminal:
            self.log_pending.add(entry_id)

    def check_epoch(self, epoch: int) -> None:
        """Raise LeadershipLost unless `epoch` is the current one (call with the lock held)."""
        if epoch != self._epoch:
            raise LeadershipLost(f"fencing epoch {epoch} was superseded by {self._epoch}")

    def request_cancel(self, task_id: TaskId) -> Task:
        with self._lock:
            row = self._rows.get(task_id)
            if row is None:
                raise TaskNotFound(f"no task with id {task_id}")
            if row.is_terminal:
                raise InvalidTransition(f"task {task_id} is already {row.status}")
            row.cancel_requested = True
            return row.copy()

    def advance_epoch(self) -> int:
        with self._lock:
            self._epoch += 1
            return self._epoch

    def count_by_status(self, *, user_id: int | None = None) -> Mapping[str, int]:
        with self._lock:
            return dict(Counter(str(t.status) for t in self._rows.values() if user_id is None or t.user_id == user_id))

    def count_waiting_retry(self) -> int:
        with self._lock:
            return sum(1 for t in self._rows.values() if _is_normal(t) and t.attempt > 1)

    def ping(self) -> None:
        """Always answers: the store is this process's memory."""


class MemoryScheduleRepository:
    """The ScheduleRepository port in memory, over a `MemoryTaskRepository` (one lock, one epoch:
    a slot's task and the schedule's bookkeeping are written together, as the SQL adapter does)."""

    def __init__(self, tasks: MemoryTaskRepository) -> None:
        self._tasks = tasks
        self._rows: dict[ScheduleId, Schedule] = {}
        self._next_id = 1

    def add(self, schedule: NewSchedule, now: datetime) -> Schedule:
        with self._tasks._lock:
            if any(r.name == schedule.name and r.namespace == schedule.namespace for r in self._rows.values()):
                raise DuplicateSchedule(
                    f"a schedule named {schedule.name!r} already exists in namespace {schedule.namespace!r}"
                )
            row = Schedule(
                id=ScheduleId(self._next_id),
                name=schedule.name,
                namespace=schedule.namespace,
                info=schedule.info,
                cron=schedule.cron,
                timezone=schedule.timezone,
                user_id=schedule.user_id,
                concurrency=schedule.concurrency,
                starting_deadline_seconds=schedule.starting_deadline_seconds,
                catch_up=schedule.catch_up,
                keep=schedule.keep,
                created_at=now,
                last_slot_at=now,
            )
            self._next_id += 1
            self._rows[row.id] = row
            return replace(row)

    def get(self, schedule_id: ScheduleId) -> Schedule:
        with self._tasks._lock:
            return replace(self._row(schedule_id))

    def find(self, namespace: str, name: str) -> Schedule:
        with self._tasks._lock:
            for row in self._rows.values():
                if row.name == name and row.namespace == namespace:
                    return replace(row)
        raise ScheduleNotFound(f"no schedule named {name!r} in namespace {namespace!r}")

    def list_schedules(
        self, *, user_id: int | None = None, suspended: bool | None = None, limit: int = 500
    ) -> list[Schedule]:
        with self._tasks._lock:
            rows = [
                replace(r)
                for _, r in sorted(self._rows.items())
                if (user_id is None or r.user_id == user_id) and (suspended is None or r.suspended == suspended)
            ]
            return rows[: max(limit, 0)]

    def set_suspended(self, schedule_id: ScheduleId, suspended: bool, now: datetime) -> Schedule:
        with self._tasks._lock:
            row = self._row(schedule_id)
            if row.suspended and not suspended and (row.last_slot_at is None or row.last_slot_at < now):
                row.last_slot_at = now
            row.suspended = suspended
            row.version += 1
            return replace(row)

    def delete(self, schedule_id: ScheduleId) -> None:
        with self._tasks._lock:
            self._row(schedule_id)
            del self._rows[schedule_id]

    def in_flight(self, schedule_id: ScheduleId, *, limit: int = 100) -> list[TaskId]:
        with self._tasks._lock:
            ids = sorted(
                task_id
                for task_id, (owner, _) in self._tasks.slots.items()
                if owner == schedule_id and not self._tasks._rows[task_id].is_terminal
            )
            return ids[: max(limit, 0)]

    def fire(self, firing: SlotFiring, *, epoch: int, now: datetime) -> FireResult:
        with self._tasks._lock:
            if epoch != self._tasks._epoch:
                raise LeadershipLost(f"fencing epoch {epoch} was superseded by {self._tasks._epoch}")
            row = self._rows.get(firing.schedule_id)
            if row is None or row.version != firing.expected_version:
                return FireResult(applied=False)
            inserted: list[TaskId] = []
            not_inserted: list[datetime] = []
            for new in firing.tasks:
                try:
                    inserted.append(self._tasks._add(new, now).id)
                except DuplicateTask:
                    not_inserted.append(new.slot_at or now)
            row.last_slot_at = firing.last_slot_at
            row.last_fired_at = firing.last_fired_at or row.last_fired_at
            row.fired += firing.fired
            row.missed += firing.missed
            row.skipped += firing.skipped
            row.version += 1
            return FireResult(applied=True, inserted=tuple(inserted), not_inserted=tuple(not_inserted))

    def _row(self, schedule_id: ScheduleId) -> Schedule:
        row = self._rows.get(schedule_id)
        if row is None:
            raise ScheduleNotFound(f"no schedule with id {schedule_id}")
        return row


class MemoryOutbox:
    """The `Outbox` port over a `MemoryTaskRepository`'s events."""

    def __init__(self, repository: MemoryTaskRepository) -> None:
        self._repo = repository

    def due(self, now: datetime, *, limit: int = 100, exclude: frozenset[int] = frozenset()) -> list[OutboxEntry]:
        with self._repo._lock:
            pending = sorted((e for e in self._repo.outbox.values() if e.state is DeliveryState.PENDING), key=_entry_id)
            first_of_task: dict[TaskId, int] = {}
            for entry in pending:
                first_of_task.setdefault(entry.task_id, entry.id)
            due = [
                e
                for e in pending
                if first_of_task[e.task_id] == e.id
                and e.id not in exclude
                and (e.next_attempt_at is None or e.next_attempt_at <= now)
            ]
            return due[: max(limit, 0)]

    def record(self, outcomes: Sequence[DeliveryOutcome], *, epoch: int) -> None:
        with self._repo._lock:
            self._repo.check_epoch(epoch)
            for outcome in outcomes:
                entry = self._repo.outbox.get(outcome.entry_id)
                if entry is None or entry.state is not DeliveryState.PENDING:
                    continue
                self._repo.outbox[entry.id] = replace(
                    entry,
                    state=outcome.state,
                    tries=outcome.tries,
                    next_attempt_at=outcome.next_attempt_at,
                    delivered_to=outcome.delivered_to,
                    last_error=outcome.last_error,
                )

    def recent(self, *, limit: int = 50, state: DeliveryState | None = None) -> list[OutboxEntry]:
        with self._repo._lock:
            entries = sorted(self._repo.outbox.values(), key=_entry_id, reverse=True)
            return [e for e in entries if state is None or e.state is state][: max(limit, 0)]


class MemoryTaskLogs:
    """The `TaskLogStore` port over a `MemoryTaskRepository`."""

    def __init__(self, repository: MemoryTaskRepository) -> None:
        self._repo = repository

    def uncaptured(self, *, limit: int = 50) -> list[LogCapture]:
        with self._repo._lock:
            ids = sorted(self._repo.log_pending)[: max(limit, 0)]
            return [LogCapture(i, self._repo.outbox[i].task_id, self._repo.outbox[i].attempt) for i in ids]

    def keep(self, capture: LogCapture, output: str, *, truncated: bool, now: datetime, epoch: int) -> None:
        with self._repo._lock:
            self._repo.check_epoch(epoch)
            key = (capture.task_id, capture.attempt)
            self._repo.logs[key] = StoredLog(capture.task_id, capture.attempt, output, truncated, now)
            self._repo.log_pending.discard(capture.entry_id)

    def stored(self, task_id: TaskId, attempt: int) -> StoredLog | None:
        with self._repo._lock:
            return self._repo.logs.get((task_id, attempt))


def _entry_id(entry: OutboxEntry) -> int:
    return entry.id


class MemoryQueueStates:
    """`QueueStates` in memory: which queues are paused."""

    def __init__(self) -> None:
        self._paused: set[str] = set()
        self._lock = threading.Lock()

    def set_paused(self, name: str, paused: bool, now: datetime) -> None:
        with self._lock:
            if paused:
                self._paused.add(name)
            else:
                self._paused.discard(name)

    def paused(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._paused)


def _by_id(task: Task) -> int:
    return task.id


def _by_rank(task: Task) -> tuple[int, int]:
    return (-task.priority, task.id)


def _is_ready(task: Task) -> bool:
    return task.status is TaskStatus.NORMAL and task.next_attempt_at is None


def _is_normal(task: Task) -> bool:
    return task.status is TaskStatus.NORMAL


def _matches(task: Task, where: TaskFilter) -> bool:
    return (
        (where.statuses is None or task.status in where.statuses)
        and (where.namespace is None or task.namespace == where.namespace)
        and (where.user_id is None or task.user_id == where.user_id)
    )


@dataclass
class MemoryJob:
    """A Job as the memory runner holds it; tests move it with `MemoryJobRunner.set_observation`."""

    namespace: str
    name: str
    task_id: TaskId | None
    spec: JobSpec | None
    observation: JobObservation = field(default_factory=lambda: JobObservation(JobPhase.PENDING))


class MemoryJobRunner:
    def __init__(self) -> None:
        self.jobs: dict[tuple[str, str], MemoryJob] = {}
        self.calls: Counter[str] = Counter()
        self.deleted: list[tuple[str, str]] = []
        self.released: list[tuple[str, str]] = []
        """Jobs whose outcome nightwatch said was stored (`release`), in call order."""
        self._faults: list[NightwatchError] = []
        self._lock = threading.Lock()
        self.logs = MemoryJobLogs()
        """The `JobLogs` port of these Jobs: tests write their output."""

    # -- test hooks -------------------------------------------------------------------------
    def add_foreign_job(self, namespace: str, name: str) -> None:
        """A Job of that name that nightwatch did not create."""
        with self._lock:
            self.jobs[(namespace, name)] = MemoryJob(namespace, name, None, None)

    def set_observation(self, namespace: str, name: str, observation: JobObservation) -> None:
        with self._lock:
            self.jobs[(namespace, name)].observation = observation

    def fail_next(self, *errors: NightwatchError) -> None:
        """The next calls (any method) raise these errors, in order."""
        with self._lock:
            self._faults.extend(errors)

    # -- the port ---------------------------------------------------------------------------
    def launch(self, request: LaunchRequest) -> LaunchResult:
        with self._lock:
            self.calls["launch"] += 1
            self._raise_fault()
            key = (request.namespace, request.job_name)
            existing = self.jobs.get(key)
            if existing is not None:
                if existing.task_id != request.task_id:
                    raise ForeignJob(
                        f"a Job named {request.job_name} already exists in {request.namespace} "
                        "and was not created by nightwatch"
                    )
                return LaunchResult(request.job_name, adopted=True)
            self.jobs[key] = MemoryJob(request.namespace, request.job_name, request.task_id, request.spec)
            return LaunchResult(request.job_name)

    def observe(self, refs: Sequence[JobRef]) -> Mapping[TaskId, JobObservation]:
        with self._lock:
            self.calls["observe"] += 1
            self._raise_fault()
            result: dict[TaskId, JobObservation] = {}
            for ref in refs:
                job = self.jobs.get((ref.namespace, ref.job_name))
                if job is None or job.task_id != ref.task_id:
                    result[ref.task_id] = JobObservation.missing(ref.namespace, ref.job_name)
                else:
                    result[ref.task_id] = job.observation
            return result

    def delete(self, ref: JobRef) -> None:
        with self._lock:
            self.calls["delete"] += 1
            self._raise_fault()
            if self.jobs.pop((ref.namespace, ref.job_name), None) is not None:
                self.deleted.append((ref.namespace, ref.job_name))

    def release(self, refs: Sequence[JobRef]) -> None:
        with self._lock:
            self.calls["release"] += 1
            self._raise_fault()
            for ref in refs:
                job = self.jobs.get((ref.namespace, ref.job_name))
                if (
                    job is not None
                    and job.task_id == ref.task_id
                    and (ref.namespace, ref.job_name) not in self.released
                ):
                    self.released.append((ref.namespace, ref.job_name))

    def held(self, namespace: str, *, unfinished: bool = False) -> list[JobRef]:
        with self._lock:
            self.calls["held"] += 1
            self._raise_fault()
            return [
                JobRef(job.task_id, ns, name)
                for (ns, name), job in self.jobs.items()
                if ns == namespace
                and job.task_id is not None
                and (ns, name) not in self.released
                and (unfinished or job.observation.phase in (JobPhase.SUCCEEDED, JobPhase.FAILED))
            ]

    def _raise_fault(self) -> None:
        if self._faults:
            raise self._faults.pop(0)


class FixedFence:
    """The Fence port holding one epoch for good: for single-process tools, tests and demos."""

    def __init__(self, epoch: int) -> None:
        self._epoch = epoch

    def epoch(self) -> int:
        return self._epoch


class MemoryLockServer:
    """The shared state behind several `MemoryLeaderLock`s (one per simulated replica)."""

    def __init__(self) -> None:
        self.owner: str | None = None
        self.expires_at: datetime | None = None
        self.lock = threading.Lock()


class MemoryLeaderLock:
    """An in-process lease with expiry on a clock; several instances sharing a server contend."""

    def __init__(
        self,
        owner: str,
        *,
        ttl_seconds: float = 10.0,
        clock: FakeClock | None = None,
        server: MemoryLockServer | None = None,
    ) -> None:
        from nightwatch.adapters.clock import SystemClock

        self.owner = owner
        self._ttl = timedelta(seconds=ttl_seconds)
        self._clock: FakeClock | SystemClock = clock or SystemClock()
        self._server = server or MemoryLockServer()

    def acquire(self) -> bool:
        now = self._clock.now()
        with self._server.lock:
            if self._server.owner not in (None, self.owner) and not self._expired(now):
                return False
            self._server.owner = self.owner
            self._server.expires_at = now + self._ttl
            return True

    def renew(self) -> bool:
        now = self._clock.now()
        with self._server.lock:
            if self._server.owner != self.owner or self._expired(now):
                return False
            self._server.expires_at = now + self._ttl
            return True

    def release(self) -> None:
        with self._server.lock:
            if self._server.owner == self.owner:
                self._server.owner = None
                self._server.expires_at = None

    def is_held(self) -> bool:
        return self.validity_seconds() > 0

    def validity_seconds(self) -> float:
        now = self._clock.now()
        with self._server.lock:
            if self._server.owner != self.owner or self._server.expires_at is None:
                return 0.0
            return max(0.0, (self._server.expires_at - now).total_seconds())

    def _expired(self, now: datetime) -> bool:
        return self._server.expires_at is None or now >= self._server.expires_at


class MemoryJobLogs:
    """`JobLogs` in memory: tests write a Job's output (`write`) and end it (`end`)."""

    def __init__(self, *, poll_seconds: float = 0.01, quiet_seconds: float = 5.0) -> None:
        self._output: dict[tuple[str, str], bytearray] = {}
        self._ended: set[tuple[str, str]] = set()
        self._cond = threading.Condition()
        self._poll = poll_seconds
        self._quiet = quiet_seconds

    def write(self, namespace: str, job_name: str, data: bytes) -> None:
        with self._cond:
            self._output.setdefault((namespace, job_name), bytearray()).extend(data)
            self._cond.notify_all()

    def end(self, namespace: str, job_name: str) -> None:
        with self._cond:
            self._ended.add((namespace, job_name))
            self._cond.notify_all()

    def forget(self, namespace: str, job_name: str) -> None:
        """The Job and its pods are gone (a TTL): its output cannot be read any more."""
        with self._cond:
            self._output.pop((namespace, job_name), None)

    def read(self, ref: JobRef, *, tail_lines: int | None, limit_bytes: int) -> bytes:
        with self._cond:
            data = self._output.get((ref.namespace, ref.job_name))
            if data is None:
                raise LogsUnavailable(f"Job {ref.namespace}/{ref.job_name} has no output")
            out = bytes(data)
        if tail_lines is not None:
            lines = out.splitlines(keepends=True)
            out = b"".join(lines[-tail_lines:]) if tail_lines > 0 else b""
        return out[-limit_bytes:] if limit_bytes > 0 else b""

    def follow(self, ref: JobRef, *, tail_lines: int | None, limit_bytes: int) -> Iterator[bytes]:
        first = self.read(ref, tail_lines=tail_lines, limit_bytes=limit_bytes)
        with self._cond:
            offset = len(self._output[(ref.namespace, ref.job_name)])
        return self._grow(ref, first, offset, limit_bytes)

    def _grow(self, ref: JobRef, first: bytes, offset: int, budget: int) -> Iterator[bytes]:
        key = (ref.namespace, ref.job_name)
        if first:
            yield first[:budget]
            budget -= len(first)
        while budget > 0:
            with self._cond:
                data = self._output.get(key, bytearray())
                if len(data) <= offset and key not in self._ended:
                    self._cond.wait(self._quiet)
                data = self._output.get(key, bytearray())
                chunk = bytes(data[offset : offset + budget])
                ended = key in self._ended
            if not chunk:
                return  # ended, or quiet for too long: the caller looks at the task
            offset += len(chunk)
            budget -= len(chunk)
            yield chunk
            if ended and offset >= len(data):
                return
