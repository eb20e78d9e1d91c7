"""In-memory adapters for every port: shipped code, usable by anyone's tests and by demos.

They keep the same rules as the real adapters (compare-and-set, fencing, idempotent launch,
lease expiry) and expose their state for inspection; they are thread-safe.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from nightwatch.domain.errors import (
    DuplicateTask,
    ForeignJob,
    InvalidTransition,
    LeadershipLost,
    NightwatchError,
    TaskNotFound,
)
from nightwatch.domain.jobspec import JobSpec, LaunchRequest
from nightwatch.domain.model import IN_FLIGHT_STATUSES, TERMINAL_STATUSES, StatusChange, Task, TaskId, TaskStatus
from nightwatch.domain.observation import KUEUE_QUEUED_PREFIX, JobObservation, JobPhase
from nightwatch.domain.ports import JobRef, LaunchResult, NewTask, TaskFilter, TaskPage, TaskSummary, WriteResult
from nightwatch.domain.queues import InFlight


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

    def add(self, task: NewTask, now: datetime) -> Task:
        with self._lock:
            if any(t.name == task.name and t.namespace == task.namespace for t in self._rows.values()):
                raise DuplicateTask(f"a task named {task.name!r} already exists in namespace {task.namespace!r}")
            row = Task(
                id=TaskId(self._next_id),
                name=task.name,
                namespace=task.namespace,
                info=task.info,
                status=TaskStatus.NORMAL,
                user_id=task.user_id,
                created_at=now,
                next_attempt_at=task.run_at,
                run_at=task.run_at,
                priority=task.priority,
            )
            self._next_id += 1
            self._rows[row.id] = row
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
                (t for t in self._rows.values() if _matches(t, where) and (before_id is None or t.id < before_id)),
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
            return WriteResult(tuple(applied), tuple(lost))

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

    def ping(self) -> None:
        """Always answers: the store is this process's memory."""


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
