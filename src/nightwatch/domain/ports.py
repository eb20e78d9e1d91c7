"""The ports: what the use cases need from the world, as `typing.Protocol`s.

Every port lives here. Each adapter package implements one of these for one technology;
`adapters/memory.py` implements all of them in memory. The task table has three sides (`LeaderStore`,
`TaskCommands`, `TaskQueries`), which one adapter class implements together (`TaskRepository`). Every method documents the domain errors it raises; adapters never let a
library exception escape.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from nightwatch.domain.jobspec import LaunchRequest
from nightwatch.domain.model import StatusChange, Task, TaskEvent, TaskId, TaskStatus
from nightwatch.domain.names import DNS1123_LABEL_MAX, job_name_for
from nightwatch.domain.notifications import DeliveryOutcome, DeliveryState, OutboxEntry
from nightwatch.domain.observation import JobObservation
from nightwatch.domain.queues import InFlight
from nightwatch.domain.schedules import Concurrency, Schedule, ScheduleId

MAX_LISTED_MESSAGE_CHARS = 1024
"""A listed task's `message` is cut to this many characters (the last one then "…"); `get` has it all."""

MAX_LISTED_NAME_CHARS = DNS1123_LABEL_MAX
"""A listed name or namespace is cut to this, like the message: a valid one is a DNS-1123 label and
always fits, but a row written by hand on SQLite (which does not enforce VARCHAR widths) may not."""

MAX_LISTED_JOB_NAME_CHARS = 253
"""A listed `job_name` is cut to this (the column's width; a Job name is a DNS-1123 subdomain)."""

LISTED_CUT_MARK = "\u2026"
"""Ends a listed field that was cut ("…")."""


@dataclass(frozen=True, slots=True)
class NewTask:
    """A task as submitted: stored as `Normal`, version 0."""

    name: str
    namespace: str
    info: str
    user_id: int = 0
    run_at: datetime | None = None
    """Not dispatched before this time (stored as `run_at` and as the not-before time)."""
    schedule_id: int | None = None
    """The schedule that made this task (with `slot_at`, unique: a slot makes one task at most)."""
    slot_at: datetime | None = None
    priority: int = 0
    """Higher first (validated by `validate_submission`)."""

    def stored_as(self, task_id: TaskId, now: datetime) -> Task:
        """The task a store holds once it has given this submission `task_id` (every store alike)."""
        return Task(
            id=task_id,
            name=self.name,
            namespace=self.namespace,
            info=self.info,
            status=TaskStatus.NORMAL,
            user_id=self.user_id,
            created_at=now,
            next_attempt_at=self.run_at,
            run_at=self.run_at,
            priority=self.priority,
        )


@dataclass(frozen=True, slots=True)
class WriteResult:
    """The outcome of a batch of compare-and-set writes."""

    applied: tuple[TaskId, ...] = ()
    lost: tuple[TaskId, ...] = field(default=())
    """Rows whose status or version had moved on: someone else won; the change was dropped."""


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """Which tasks a listing wants; every field left at None matches everything."""

    statuses: frozenset[TaskStatus] | None = None
    namespace: str | None = None
    user_id: int | None = None
    schedule_id: int | None = None
    """Only the tasks this schedule made."""


def cut_listed(text: str, limit: int) -> str:
    """`text` if it has at most `limit` characters, else its first `limit - 1` and `LISTED_CUT_MARK`."""
    return text if len(text) <= limit else text[: limit - 1] + LISTED_CUT_MARK


@dataclass(frozen=True, slots=True)
class TaskSummary:
    """A task as listings show it: every field of `Task` but `info`, each text field bounded.

    Listings carry summaries so that a page's size is bounded whatever the rows hold: `info` may be
    256 KiB (more in a row written by hand), and a listing must not load it. The text fields are
    cut here, on construction, to `MAX_LISTED_NAME_CHARS` (name, namespace),
    `MAX_LISTED_JOB_NAME_CHARS` and `MAX_LISTED_MESSAGE_CHARS`, so no adapter can hand out an
    unbounded one; adapters may cut earlier (the SQL one cuts in the query, keeping the bytes off the
    wire) as long as they keep one character more than the bound, so the cut is still marked.
    """

    id: TaskId
    name: str
    namespace: str
    status: TaskStatus
    user_id: int = 0
    message: str = ""
    job_name: str | None = None
    version: int = 0
    cancel_requested: bool = False
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    priority: int = 0
    next_attempt_at: datetime | None = None
    run_at: datetime | None = None
    queue: str | None = None

    def __post_init__(self) -> None:
        # Frozen: the bounded values replace the given ones through object.__setattr__.
        object.__setattr__(self, "name", cut_listed(self.name, MAX_LISTED_NAME_CHARS))
        object.__setattr__(self, "namespace", cut_listed(self.namespace, MAX_LISTED_NAME_CHARS))
        object.__setattr__(self, "message", cut_listed(self.message, MAX_LISTED_MESSAGE_CHARS))
        if self.job_name is not None:
            object.__setattr__(self, "job_name", cut_listed(self.job_name, MAX_LISTED_JOB_NAME_CHARS))
        if self.queue is not None:  # VARCHAR(63), but SQLite does not enforce widths
            object.__setattr__(self, "queue", cut_listed(self.queue, MAX_LISTED_NAME_CHARS))

    @classmethod
    def of(cls, task: Task) -> TaskSummary:
        return cls(
            id=task.id,
            name=task.name,
            namespace=task.namespace,
            status=task.status,
            user_id=task.user_id,
            message=task.message,
            job_name=task.job_name,
            version=task.version,
            cancel_requested=task.cancel_requested,
            created_at=task.created_at,
            started_at=task.started_at,
            finished_at=task.finished_at,
            priority=task.priority,
            next_attempt_at=task.next_attempt_at,
            run_at=task.run_at,
            queue=task.queue,
        )


@dataclass(frozen=True, slots=True)
class TaskPage:
    """One page of a newest-first listing: summaries, never `info` (`TaskQueries.get` has it)."""

    tasks: tuple[TaskSummary, ...]
    next_before_id: int | None
    """Pass as `before_id` for the next page; None when this page reached the end. It is the id of
    the last row scanned (not necessarily returned: an unreadable row is skipped, not counted)."""


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class LeaderStore(Protocol):
    """The leader's unit of work: read what is due, write status changes under the fencing epoch.

    Only the leader's watchers and `Leadership` use it; every write goes through `apply`.
    """

    def get(self, task_id: TaskId) -> Task:
        """One task. Raises TaskNotFound; RetryableError."""
        ...

    def list_by_status(self, statuses: Sequence[TaskStatus], *, after_id: int = 0, limit: int = 500) -> list[Task]:
        """Tasks in any of `statuses` with id > after_id, oldest (lowest id) first, at most `limit`.

        Tasks whose cancellation was requested are included; rows that cannot be read (unknown
        status, undecodable fields) are skipped and logged, never raised. Raises RetryableError.
        """
        ...

    def list_ready(self, *, after_id: int = 0, after_priority: int | None = None, limit: int = 500) -> list[Task]:
        """`Normal` tasks without a not-before time, highest priority first, then lowest id, at most
        `limit`, after the position (after_priority, after_id): with after_priority None, every
        priority from the highest, id > after_id within each.

        Walks the (status, next_attempt_at, priority, id) index one equality range per distinct
        priority, so it costs O(limit + priorities crossed) however many tasks wait. Skips unreadable
        rows like `list_by_status`. Raises RetryableError.
        """
        ...

    def list_ready_users(self, *, after_user: int | None = None, limit: int = 1000) -> list[int]:
        """The distinct user ids (ascending, > after_user) that have ready tasks (as `list_ready`),
        at most `limit`: a skip scan of the (status, next_attempt_at, user_id, id) index, one probe
        per user, never a scan of their tasks. Rows whose user_id is NULL are not listed. Raises
        RetryableError."""
        ...

    def list_ready_of_users(self, user_ids: Sequence[int], *, per_user: int) -> list[Task]:
        """Each user's oldest `per_user` ready tasks (id order), O(len(user_ids) x per_user). Raises
        RetryableError."""
        ...

    def count_in_flight(self, *, started_since: datetime) -> InFlight:
        """Pending + Running tasks counted by (queue, user_id), and by queue those started at or after
        `started_since`; a Pending task whose Job Kueue holds (message "Queued by Kueue: ...") is
        not counted: Kueue owns its admission. A GROUP BY over the in-flight rows only (the
        (status, queue, user_id) index). `paused` is left empty (`QueueStates` has it). Raises
        RetryableError."""
        ...

    def list_come_due(self, now: datetime, *, limit: int = 500) -> list[Task]:
        """`Normal` tasks whose not-before time is at or before `now`, earliest time first (then id),
        at most `limit`; the same index serves it in O(limit). Raises RetryableError."""
        ...

    def list_cancel_requested(self, *, limit: int = 500) -> list[Task]:
        """Non-terminal tasks whose cancellation was requested, oldest first. Raises RetryableError."""
        ...

    def get_many(self, task_ids: Collection[TaskId], *, statuses: Collection[TaskStatus] | None = None) -> list[Task]:
        """The tasks with these ids (in any of `statuses`, when given), oldest first: what sync reads
        for the Jobs that changed, never the whole in-flight set. Ids with no row (or another status)
        are left out; unreadable rows are skipped and logged, never raised. Raises RetryableError.
        """
        ...

    def apply(self, changes: Sequence[StatusChange], *, epoch: int) -> WriteResult:
        """Apply compare-and-set writes in one transaction, only while `epoch` is the fencing epoch.

        Raises LeadershipLost (nothing written) when a newer epoch has been taken; RetryableError.
        """
        ...

    def advance_epoch(self) -> int:
        """Take the next fencing epoch (atomically increment it) and return it. Raises RetryableError."""
        ...


class QueueStates(Protocol):
    """The run state of each queue (the `queue_state` table): shared by every replica and leader."""

    def set_paused(self, name: str, paused: bool, now: datetime) -> None:
        """Pause (True) or resume (False) a queue; idempotent. Raises RetryableError."""
        ...

    def paused(self) -> frozenset[str]:
        """The names of the paused queues. Raises RetryableError."""
        ...


class TaskCommands(Protocol):
    """What users change (CLI, REST API): new tasks and cancellation requests. Never a status."""

    def add(self, task: NewTask, now: datetime) -> Task:
        """Insert a `Normal` task. Raises DuplicateTask if (name, namespace) exists; RetryableError."""
        ...

    def request_cancel(self, task_id: TaskId) -> Task:
        """Flag a task for cancellation (no status change; the leader acts on it).

        Raises TaskNotFound; InvalidTransition if the task is already terminal; RetryableError.
        """
        ...


class TaskQueries(Protocol):
    """The read side the REST API, the CLI, metrics and health checks share."""

    def get(self, task_id: TaskId) -> Task:
        """One task. Raises TaskNotFound; RetryableError."""
        ...

    def list_newest(self, where: TaskFilter, *, before_id: int | None = None, limit: int = 50) -> TaskPage:
        """Summaries of the tasks matching `where` with id < before_id (all when None), newest (highest
        id) first. `info` is never loaded, and each text field is bounded (`TaskSummary`).

        Rows inserted while someone pages through get higher ids, so they never shift a later page.
        Rows that cannot be read are skipped quietly. Raises RetryableError.
        """
        ...

    def list_events(self, task_id: TaskId, *, limit: int = 200) -> list[TaskEvent]:
        """The task's history: its newest `limit` events (the creation, then one per applied status
        change), oldest first. An unknown task has none (callers that must tell check `get` first).
        Raises RetryableError."""
        ...

    def count_waiting_retry(self) -> int:
        """`Normal` tasks on an attempt > 1: waiting for a retry's backoff, or for dispatch. Served by
        the (status, ...) index prefix. Raises RetryableError."""
        ...

    def count_by_status(self, *, user_id: int | None = None) -> Mapping[str, int]:
        """Row counts keyed by the raw status string (unknown strings included), of one user's rows
        when `user_id` is given. Raises RetryableError."""
        ...

    def count_ready_ahead(
        self,
        task: Task,
        *,
        namespaces: frozenset[str] = frozenset(),
        users: frozenset[int] = frozenset(),
    ) -> int:
        """How many ready tasks dispatch takes before `task` (higher priority, or the same and older),
        of the given namespaces and users when those are not empty: one COUNT over the priority
        index, for one task's detail view. Raises RetryableError."""
        ...

    def count_in_flight(self, *, started_since: datetime) -> InFlight:
        """As `LeaderStore.count_in_flight` (the same method): for saying why a task waits."""
        ...

    def ping(self) -> None:
        """Check that the store answers and the task table is readable, over a fresh connection where
        the technology allows (so a pooled connection cannot hide a broken file). Raises RetryableError.
        """
        ...


class TaskRepository(LeaderStore, TaskCommands, TaskQueries, Protocol):
    """All three sides of the task table: what one storage adapter implements (memory, SQL).

    Only the composition root and the contract suite hold one; everything else asks for the side
    it uses, so a reader cannot write and a command cannot skip the fence.
    """


@dataclass(frozen=True, slots=True)
class JobRef:
    """Which Job belongs to an in-flight task."""

    task_id: TaskId
    namespace: str
    job_name: str
    started_at: datetime | None = None
    attempt: int = 1
    """The attempt the Job runs (its pods carry it too; a pod of an earlier attempt is not its evidence)."""

    @classmethod
    def of(cls, task: Task) -> JobRef:
        """The Job of an in-flight task. A row written as Pending by hand has no job_name or
        started_at: its Job is named after the task (its attempt's name), and its age still counts
        for a diagnosis."""
        return cls(
            task.id,
            task.namespace,
            task.job_name or job_name_for(task.name, task.attempt),
            task.started_at or task.created_at,
            max(1, task.attempt),
        )


@dataclass(frozen=True, slots=True)
class LaunchResult:
    job_name: str
    adopted: bool = False
    """True when the Job already existed with our task-id label (a crash between create and write)."""
    note: str = ""
    """What the task's message says once it is Pending (e.g. the profile fields a runner ignored)."""


class JobRunner(Protocol):
    def launch(self, request: LaunchRequest) -> LaunchResult:
        """Create the task's Job, or adopt the one nightwatch already made for this task.

        Raises JobRefused (permanent; as ForeignJob for a Job of that name nightwatch did not
        create for this task, JobInvalid for an invalid spec, JobForbidden for a 403) or
        RetryableError (the task should stay `Normal` and be tried again).
        """
        ...

    def observe(self, refs: Sequence[JobRef]) -> Mapping[TaskId, JobObservation]:
        """Observe the Jobs of many tasks at once (never one request per task).

        Every ref gets an entry; a Job that does not exist is `JobPhase.MISSING`. A ref whose
        namespace could not be read this time (RBAC, a timeout) gets none, so its task stays as it
        is while the others are observed; so does a ref whose Job is failing while its pods still
        terminate (their exit codes are not known yet). A Job with no running pod past its start
        timeout is deleted and observed as failed (`JobObservation.start_timed_out`). Raises
        RetryableError if nothing could be read at all.
        """
        ...

    def delete(self, ref: JobRef) -> None:
        """Delete a Job and its pods in the background; a Job already gone is success. Its outcome is
        not wanted any more, so nightwatch's hold on it (see `release`) goes too.

        Raises RetryableError.
        """
        ...

    def release(self, refs: Sequence[JobRef]) -> None:
        """The outcome of these tasks' Jobs is stored: let the cluster collect them.

        A runner whose cluster may delete a finished Job before nightwatch has read it (the TTL
        controller, a user) holds every Job it creates until this call. A Job already gone, not held,
        or not this task's (another task's id on it) is success. Raises RetryableError (some could not
        be released this time; releasing again is harmless).
        """
        ...

    def held(self, namespace: str, *, unfinished: bool = False) -> list[JobRef]:
        """The Jobs in `namespace` that nightwatch still holds and that have finished or are being
        deleted (with `unfinished`, every held Job), as refs built from the Jobs themselves (task id
        from the Job's label): for releasing the Jobs of rows that are already terminal, and for
        uninstalling. Raises RetryableError.
        """
        ...


@runtime_checkable
class ChangeFeed(Protocol):
    """What a JobRunner that pushes changes offers on top of `observe` (the Kubernetes informer, the local
    supervisor): which tasks' Jobs changed, so sync reads and observes only those.

    A runner without it is observed in full on every sync tick (the memory runner: polling is free there).
    """

    @property
    def follows_changes(self) -> bool:
        """False when this runner is configured not to push changes (then sync polls it)."""
        ...

    def follow(self, namespaces: Collection[str], wake: Callable[[], None]) -> None:
        """From now on follow the Jobs of these namespaces (those with tasks in flight), and no others;
        a launch in another namespace adds it. `wake()` is called, from any thread, when a change is
        queued after none was. Never raises (a namespace that cannot be read is retried inside)."""
        ...

    def take_changes(self) -> set[TaskId]:
        """The tasks whose Job changed since the last call (coalesced), and now and then those whose
        Job is still waiting for a pod (their diagnosis and start timeout move with time). Never raises."""
        ...

    def stop_following(self) -> None:
        """Stop at once and forget every queued change (a step-down: nothing heard before it is
        written after it). Never raises."""
        ...


class JobLogs(Protocol):
    """The output of a task's Job while it exists (a pod's log, a local Job's output file)."""

    def read(self, ref: JobRef, *, tail_lines: int | None, limit_bytes: int) -> bytes:
        """The output so far (its last `tail_lines` lines when given), at most `limit_bytes` (the
        last ones). Raises LogsUnavailable (no pod yet, or the Job is gone); RetryableError."""
        ...

    def follow(self, ref: JobRef, *, tail_lines: int | None, limit_bytes: int) -> Iterator[bytes]:
        """The output so far, then more as it is written, until the container ends, the stream is
        cut or `limit_bytes` were sent; the caller closes it to stop early (so an adapter must not
        hold a lock while it yields). Raises LogsUnavailable, RetryableError before the first chunk."""
        ...


@dataclass(frozen=True, slots=True)
class StoredLog:
    """The kept tail of one finished attempt's output."""

    task_id: TaskId
    attempt: int
    output: str
    truncated: bool
    """True when the output was longer than what was kept."""
    captured_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LogCapture:
    """A finished attempt whose output has not been kept yet (from the outbox entry of its end)."""

    entry_id: int
    task_id: TaskId
    attempt: int


class TaskLogStore(Protocol):
    """The `task_log` table: output kept after the Job is gone."""

    def uncaptured(self, *, limit: int = 50) -> list[LogCapture]:
        """Finished attempts still to capture, oldest first. Raises RetryableError."""
        ...

    def keep(self, capture: LogCapture, output: str, *, truncated: bool, now: datetime, epoch: int) -> None:
        """Store (or replace) the attempt's output and mark the capture done, under the fencing
        epoch. Raises LeadershipLost; RetryableError."""
        ...

    def stored(self, task_id: TaskId, attempt: int) -> StoredLog | None:
        """The kept output of one attempt, None if none was kept. Raises RetryableError."""
        ...


class Outbox(Protocol):
    """The events `LeaderStore.apply` recorded with their status writes, and their delivery."""

    def due(self, now: datetime, *, limit: int = 100, exclude: frozenset[int] = frozenset()) -> list[OutboxEntry]:
        """Pending entries whose next try is due at `now`, lowest id first, leaving out the ids in
        `exclude` (being sent) and every entry with an older pending one of the same task (so each
        task's events reach a receiver in order). Raises RetryableError."""
        ...

    def record(self, outcomes: Sequence[DeliveryOutcome], *, epoch: int) -> None:
        """Store what sending did, for entries still pending, under the fencing epoch.
        Raises LeadershipLost (nothing written); RetryableError."""
        ...

    def recent(self, *, limit: int = 50, state: DeliveryState | None = None) -> list[OutboxEntry]:
        """The newest entries first (of one state when given). Raises RetryableError."""
        ...


class WebhookPoster(Protocol):
    """Sends one notification body to one receiver."""

    def post(self, url: str, body: bytes, headers: Mapping[str, str], *, timeout_seconds: float) -> None:
        """POST `body`; returns on a 2xx answer. Raises RetryableError for anything else (an error
        status, a timeout, a refused connection), with a message saying which."""
        ...


class LeaderLock(Protocol):
    """A lease held by at most one replica. The fencing epoch comes from `TaskRepository.advance_epoch`."""

    def acquire(self) -> bool:
        """Try once to take the lease; True if this replica now holds it. Never blocks for long."""
        ...

    def renew(self) -> bool:
        """Extend a held lease; False if it could not be extended (then it must be treated as lost)."""
        ...

    def release(self) -> None:
        """Give the lease up if held (so a standby takes over at once). Never raises."""
        ...

    def is_held(self) -> bool:
        """True while this replica holds an unexpired lease."""
        ...

    def validity_seconds(self) -> float:
        """Seconds left on the held lease (0.0 if not held)."""
        ...


class Fence(Protocol):
    """Leadership as a use case sees it: the current fencing epoch, or LeadershipLost."""

    def epoch(self) -> int:
        """The epoch to write under. Raises LeadershipLost when the lease is not (or no longer) held."""
        ...


class Ticker(Protocol):
    """Runs named ticks on an interval or a cron spec (APScheduler in production)."""

    def add(self, name: str, tick: Callable[[], None], *, interval_seconds: float | None, cron: str | None) -> None:
        """Register a tick; at most one run of it at a time, missed runs coalesced."""
        ...

    def start(self) -> None: ...

    def pause(self, name: str) -> None:
        """Stop starting new runs of `name`; a run already going finishes."""
        ...

    def resume(self, name: str) -> None: ...

    def wake(self, name: str) -> None:
        """Run `name` as soon as possible (once, whatever the number of calls); if a run is going,
        run it again right after. A paused or unknown name is left alone."""
        ...

    def shutdown(self, wait: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class NewSchedule:
    """A schedule as created (validated by `CreateSchedule`); its slots start after `now` of `add`."""

    name: str
    namespace: str
    info: str
    cron: str
    timezone: str = "UTC"
    user_id: int = 0
    concurrency: Concurrency = Concurrency.ALLOW
    starting_deadline_seconds: int | None = None
    catch_up: int = 1
    keep: int = 10


@dataclass(frozen=True, slots=True)
class SlotFiring:
    """One schedule's step: its slots' tasks and its new bookkeeping, written together or not at all."""

    schedule_id: ScheduleId
    expected_version: int
    """Compare-and-set: applied only while the schedule row still has this version."""
    tasks: tuple[NewTask, ...]
    """Each with `schedule_id` and `slot_at` set; a slot whose task exists already is left alone."""
    last_slot_at: datetime
    last_fired_at: datetime | None
    fired: int = 0
    missed: int = 0
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class FireResult:
    applied: bool
    """False: the schedule moved on (another leader, a pause, an edit); nothing was written."""
    inserted: tuple[TaskId, ...] = ()
    not_inserted: tuple[datetime, ...] = ()
    """Slots whose task was not inserted: it exists already, or its name is taken in the namespace."""


class CronCalendar(Protocol):
    """The instants a cron spec names in an IANA zone (APScheduler's CronTrigger in production).

    Specs: 5 fields (minute hour day-of-month month day-of-week, 0 or 7 = Sunday), 6 with a
    leading seconds field, the aliases @yearly @annually @monthly @weekly @daily @midnight @hourly,
    and `@every <duration>` (`30s`, `1h30m`; whole seconds, slots at multiples of it since the Unix epoch).
    """

    def check(self, spec: str, timezone: str) -> None:
        """Raises InvalidSchedule naming `cron` or `timezone` (every problem) when either is bad."""
        ...

    def slots(self, spec: str, timezone: str, after: datetime, *, until: datetime | None, limit: int) -> list[datetime]:
        """The slots in (after, until] (no bound when None), earliest first, at most `limit`, as
        UTC instants, one per instant (the DST rules are in docs/schedules.md). Raises InvalidSchedule."""
        ...


class ScheduleRepository(Protocol):
    """The schedule table, and the fenced insert of a slot's task with the schedule's bookkeeping."""

    def add(self, schedule: NewSchedule, now: datetime) -> Schedule:
        """Store a schedule whose slots start after `now`. Raises DuplicateSchedule; RetryableError."""
        ...

    def get(self, schedule_id: ScheduleId) -> Schedule:
        """Raises ScheduleNotFound; RetryableError."""
        ...

    def find(self, namespace: str, name: str) -> Schedule:
        """Raises ScheduleNotFound; RetryableError."""
        ...

    def list_schedules(
        self, *, user_id: int | None = None, suspended: bool | None = None, limit: int = 500
    ) -> list[Schedule]:
        """Schedules by id, at most `limit`, of one user / suspended or not when given. Raises RetryableError."""
        ...

    def set_suspended(self, schedule_id: ScheduleId, suspended: bool, now: datetime) -> Schedule:
        """Pause or resume (the version moves, so a spawner's stale step is refused). Resuming marks
        every slot up to `now` handled: the slots of the pause do not run and are not counted as missed.
        Raises ScheduleNotFound; RetryableError."""
        ...

    def delete(self, schedule_id: ScheduleId) -> None:
        """Remove the schedule; its tasks stay. Raises ScheduleNotFound; RetryableError."""
        ...

    def in_flight(self, schedule_id: ScheduleId, *, limit: int = 100) -> list[TaskId]:
        """Ids of this schedule's tasks that are Normal, Pending or Running. Raises RetryableError."""
        ...

    def fire(self, firing: SlotFiring, *, epoch: int, now: datetime) -> FireResult:
        """In one transaction, only while `epoch` is the fencing epoch and the schedule row still has
        `expected_version`: insert each task whose (schedule_id, slot_at) and (name, namespace) are
        free, and write the bookkeeping. Raises LeadershipLost (nothing written); RetryableError."""
        ...
