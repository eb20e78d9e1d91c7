"""The task entity and its state machine.

    Normal --start--> Pending --observe(active)--> Running --observe(succeeded)--> Succeeded
                         ^                            |
                         '--observe(suspended)--------'   (Kueue preemption, kubectl patch suspend)
    Normal/Pending/Running --fail--> Failed;   Normal/Pending/Running --cancel--> Cancelled
    Normal --postpone(until)--> Normal   (not before `until`: a `run_at` in the future)
    Pending/Running --retry(until)--> Normal   (attempt + 1, not before `until`: a retry's backoff)

Every transition returns a `StatusChange`: the compare-and-set write that a repository applies
only if the row still has the status and version this entity was read with. Each applied change is
also a `TaskEvent`, the task's history, written in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import NewType

from nightwatch.domain.errors import InvalidTransition
from nightwatch.domain.observation import JobObservation, JobPhase

TaskId = NewType("TaskId", int)

MAX_MESSAGE_CHARS = 4000
"""Messages are for people; a runaway condition message or output tail is cut to this length."""


class TaskStatus(StrEnum):
    """The exact strings stored in `task.status`; they are compared case-sensitively everywhere."""

    NORMAL = "Normal"
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES

    @classmethod
    def parse(cls, value: str) -> TaskStatus | None:
        """The status for an exact string, or None for one nightwatch does not know (left alone)."""
        try:
            return cls(value)
        except ValueError:
            return None


TERMINAL_STATUSES = frozenset({TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED})
IN_FLIGHT_STATUSES = (TaskStatus.PENDING, TaskStatus.RUNNING)

_ALLOWED: dict[TaskStatus, frozenset[TaskStatus]] = {
    # Normal -> Normal: postponed (a not-before time), still waiting for dispatch.
    TaskStatus.NORMAL: frozenset({TaskStatus.NORMAL, TaskStatus.PENDING, TaskStatus.FAILED, TaskStatus.CANCELLED}),
    # Pending -> Pending is a message update (a diagnosis such as ImagePullBackOff).
    # Pending/Running -> Normal: a retry (the next attempt waits for its backoff).
    TaskStatus.PENDING: frozenset(
        {
            TaskStatus.NORMAL,
            TaskStatus.PENDING,
            TaskStatus.RUNNING,
            TaskStatus.SUCCEEDED,
            TaskStatus.FAILED,
            TaskStatus.CANCELLED,
        }
    ),
    # Running -> Pending: its Job was suspended (its pods deleted); it runs again when resumed.
    TaskStatus.RUNNING: frozenset(
        {TaskStatus.NORMAL, TaskStatus.PENDING, TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED}
    ),
    TaskStatus.SUCCEEDED: frozenset(),
    TaskStatus.FAILED: frozenset(),
    TaskStatus.CANCELLED: frozenset(),
}


def clip(message: str) -> str:
    """`message` as stored: NUL (a container's termination message may hold one; PostgreSQL stores no
    NUL in text, and a refused batch would fail every tick) as U+FFFD, cut to MAX_MESSAGE_CHARS."""
    message = message.replace("\x00", "\ufffd")
    return message if len(message) <= MAX_MESSAGE_CHARS else message[: MAX_MESSAGE_CHARS - 3] + "..."


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A compare-and-set status write: applied only where id, status and version still match."""

    task_id: TaskId
    expected_status: TaskStatus
    expected_version: int
    status: TaskStatus
    message: str
    job_name: str | None
    started_at: datetime | None
    finished_at: datetime | None
    attempt: int = 1
    next_attempt_at: datetime | None = None
    """Only a move to Normal sets these two (a postponement, a retry); every other move carries
    them unchanged, and the SQL adapter writes them only in batches that hold a move to Normal."""
    failure_class: str = ""
    """For the history only (not a task column): the failure class of a retry or a failure."""
    reason: str = ""
    """For the history only: the short reason of the change (the Job condition's reason...)."""
    queue: str | None = None
    """The queue a start admitted the task under (None: no queue); set by a start like job_name,
    carried unchanged by every other move."""


@dataclass(frozen=True, slots=True)
class TaskEvent:
    """One entry of a task's history (`task_event`): a status change as it was applied."""

    task_id: TaskId
    at: datetime
    attempt: int
    from_status: str | None
    """None for the creation of the task."""
    to_status: str
    job_name: str | None = None
    failure_class: str = ""
    reason: str = ""
    message: str = ""
    epoch: int | None = None
    """The fencing epoch of the leader that wrote it (None: a user's write, the submission)."""
    id: int = 0
    """Assigned by the store; orders a task's events."""

    @classmethod
    def of(cls, change: StatusChange, at: datetime, epoch: int | None) -> TaskEvent:
        return cls(
            task_id=change.task_id,
            at=at,
            attempt=change.attempt,
            from_status=str(change.expected_status),
            to_status=str(change.status),
            job_name=change.job_name,
            failure_class=change.failure_class,
            reason=change.reason,
            message=change.message,
            epoch=epoch,
        )


@dataclass(slots=True)
class Task:
    id: TaskId
    name: str
    namespace: str
    info: str
    status: TaskStatus
    user_id: int = 0
    message: str = ""
    job_name: str | None = None
    version: int = 0
    cancel_requested: bool = False
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempt: int = 1
    """The attempt this task is on, from 1 (retries are later attempts, each a new Job)."""
    next_attempt_at: datetime | None = None
    """A `Normal` task is not dispatched before this time (None: at once)."""
    run_at: datetime | None = None
    """When the user asked it to run (None: now). Dispatch postpones a task found earlier."""
    priority: int = 0
    """Higher is dispatched first (then oldest); see `domain/queues.py` for the bounds."""
    queue: str | None = None
    """The queue the task was launched under (set by its start); None before, or without queues."""

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    def start(
        self, job_name: str, now: datetime, message: str = "", *, queue: str | None = None
    ) -> StatusChange:
        """Normal -> Pending: the Job `job_name` was created (or adopted), admitted under `queue`;
        `message` notes how, if at all."""
        if self.status is not TaskStatus.NORMAL:
            raise InvalidTransition(f"task {self.id} cannot go from {self.status} to Pending: only Normal tasks start")
        return self._move(TaskStatus.PENDING, now, message=message, job_name=job_name, queue=queue)

    def postpone(self, until: datetime, now: datetime, message: str = "") -> StatusChange:
        """Normal -> Normal, not dispatched before `until`."""
        if self.status is not TaskStatus.NORMAL:
            raise InvalidTransition(f"task {self.id} is {self.status}; only Normal tasks are postponed")
        return self._move(TaskStatus.NORMAL, now, message=message, next_attempt_at=until)

    def due(self, now: datetime) -> bool:
        """Whether a Normal task may start at `now` (its not-before and run_at times have come)."""
        return all(when is None or when <= now for when in (self.next_attempt_at, self.run_at))

    def fail(self, message: str, now: datetime, *, failure_class: str = "", reason: str = "") -> StatusChange:
        """Any non-terminal status -> Failed, with a message saying why."""
        return self._move(TaskStatus.FAILED, now, message=message, failure_class=failure_class, reason=reason)

    def retry(
        self, until: datetime, now: datetime, message: str, *, failure_class: str = "", reason: str = ""
    ) -> StatusChange:
        """Pending/Running -> Normal: this attempt failed and the next one (attempt + 1, a new Job) is
        dispatched not before `until`. The failed attempt's Job is left for cleanup."""
        if self.status not in IN_FLIGHT_STATUSES:
            raise InvalidTransition(f"task {self.id} is {self.status}; only Pending/Running tasks are retried")
        return self._move(
            TaskStatus.NORMAL,
            now,
            message=message,
            attempt=self.attempt + 1,
            next_attempt_at=until,
            failure_class=failure_class,
            reason=reason,
        )

    def cancel(self, now: datetime, message: str = "cancelled on request") -> StatusChange:
        """Any non-terminal status -> Cancelled (the caller deletes the Job first, if there is one)."""
        return self._move(TaskStatus.CANCELLED, now, message=message)

    def observe(self, observation: JobObservation, now: datetime) -> StatusChange | None:
        """Apply what the cluster says about this task's Job; None when nothing changes."""
        if self.status not in IN_FLIGHT_STATUSES:
            raise InvalidTransition(f"task {self.id} is {self.status}; only Pending/Running tasks observe Jobs")
        phase = observation.phase
        if phase is JobPhase.SUCCEEDED:
            return self._move(TaskStatus.SUCCEEDED, now, message=observation.summary, reason=observation.reason)
        if phase in (JobPhase.FAILED, JobPhase.MISSING):
            return self._move(TaskStatus.FAILED, now, message=observation.summary, reason=observation.reason)
        if phase is JobPhase.ACTIVE:
            return self._move(TaskStatus.RUNNING, now, message="") if self.status is TaskStatus.PENDING else None
        if phase is JobPhase.SUSPENDED:
            # Running -> Pending (its pods were deleted), or a Pending task says why it waits.
            message = observation.suspended_message
            if self.status is TaskStatus.RUNNING or message != self.message:
                return self._move(TaskStatus.PENDING, now, message=message)
            return None
        # Still pending: only a new diagnosis on a Pending task is worth a write.
        if self.status is TaskStatus.PENDING and observation.summary != self.message:
            return self._move(TaskStatus.PENDING, now, message=observation.summary)
        return None

    def _move(
        self,
        to: TaskStatus,
        now: datetime,
        *,
        message: str,
        job_name: str | None = None,
        attempt: int | None = None,
        next_attempt_at: datetime | None = None,
        failure_class: str = "",
        reason: str = "",
        queue: str | None = None,
    ) -> StatusChange:
        if to not in _ALLOWED[self.status]:
            raise InvalidTransition(f"task {self.id} cannot go from {self.status} to {to}")
        change = StatusChange(
            task_id=self.id,
            expected_status=self.status,
            expected_version=self.version,
            status=to,
            message=clip(message),
            job_name=job_name if job_name is not None and self.status is TaskStatus.NORMAL else self.job_name,
            # Only a start sets job_name and started_at; every other move carries them unchanged
            # (the SQL adapter relies on it to leave those columns out of non-start batches).
            started_at=now if self.status is TaskStatus.NORMAL and to is TaskStatus.PENDING else self.started_at,
            finished_at=now if to.is_terminal else None,
            attempt=self.attempt if attempt is None else attempt,
            next_attempt_at=next_attempt_at if to is TaskStatus.NORMAL else self.next_attempt_at,
            failure_class=failure_class,
            reason=reason,
            queue=queue if self.status is TaskStatus.NORMAL and to is TaskStatus.PENDING else self.queue,
        )
        self.apply(change)
        return change

    def apply(self, change: StatusChange) -> None:
        """Make this entity reflect a change (used by transitions and by in-memory stores)."""
        self.status = change.status
        self.message = change.message
        self.job_name = change.job_name
        self.started_at = change.started_at
        self.finished_at = change.finished_at
        self.attempt = change.attempt
        self.next_attempt_at = change.next_attempt_at
        self.queue = change.queue
        self.version = change.expected_version + 1

    def copy(self) -> Task:
        return replace(self)
