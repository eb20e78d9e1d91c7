"""DispatchTasks: one tick that turns `Normal` tasks into Jobs and marks them `Pending`.

Throughput is bounded by the API server, so the database work hides behind the API calls:
the next batch of tasks is read while the current one is being launched, Jobs are created by a
bounded worker pool, and status writes are flushed in chunks by a single writer thread while
launches continue. One bad row (invalid info, a refused Job) fails that task only.

A launch that admission defers (`AdmissionDeferred`: a full ResourceQuota, a plugin not ready) leaves
the task Normal and starts an outage for its namespace: logged once, then while it lasts only one task
of that namespace is tried per backoff period (doubling up to DEFERRAL_BACKOFF_MAX_SECONDS), the
others are deferred without an API call, and the first launch that succeeds there ends it (logged).
Every deferral is counted by reason in the report (`deferred_by_reason`, a metric).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from nightwatch.domain.errors import AdmissionDeferred, InvalidTaskSpec, JobRefused, LeadershipLost, RetryableError
from nightwatch.domain.jobspec import LaunchRequest
from nightwatch.domain.model import StatusChange, Task, TaskId, TaskStatus
from nightwatch.domain.ports import Clock, Fence, JobRef, JobRunner, LaunchResult, LeaderStore, QueueStates
from nightwatch.domain.queues import Candidate, InFlight, Queues, select
from nightwatch.domain.submission import (
    Submission,
    SubmissionPolicy,
    claimed_queue,
    launch_request_of,
    submission_for,
)

logger = logging.getLogger(__name__)

DEFERRAL_BACKOFF_SECONDS = 2.0
"""After admission defers a launch in a namespace (quota, not ready), the wait before one is tried again."""
DEFERRAL_BACKOFF_MAX_SECONDS = 60.0
"""The wait doubles with each deferred try, up to this: a freed quota is used within a minute."""


class DispatchSettings(BaseModel):
    """How one dispatch tick reads, launches and writes (the `dispatch:` configuration section)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_size: int = Field(default=500, gt=0, le=10_000)
    """Normal tasks read per query."""
    workers: int = Field(default=8, gt=0, le=256)
    """Concurrent Job creations."""
    write_batch_size: int = Field(default=200, gt=0, le=5_000)
    """Status rows written per statement."""
    max_tasks_per_tick: int = Field(default=100_000, gt=0)
    """Tasks read by one tick at most; the next tick goes on."""
    max_in_flight: int | None = Field(default=None, gt=0)
    """Pending + Running tasks at most, in any queue or none (None: no global cap)."""
    fair_share_users: int = Field(default=2_000, gt=0, le=100_000)
    """Users with ready work a tick looks at for fair-share queues (one index probe each)."""


@dataclass
class DispatchReport:
    launched: int = 0
    adopted: int = 0
    failed: int = 0
    cancelled: int = 0
    deferred: int = 0
    """Tasks left `Normal` after a retryable error; the next tick tries again."""
    lost: int = 0
    postponed: int = 0
    """Tasks found before their run_at and given it as their not-before time."""
    errors: list[str] = field(default_factory=list)
    deferred_by_reason: dict[str, int] = field(default_factory=dict)
    """`deferred` by why: an `AdmissionDeferred` reason (quota, not-ready), "api" (another retryable
    error) or "unexpected" (an adapter bug)."""

    def defer(self, reason: str) -> None:
        self.deferred += 1
        self.deferred_by_reason[reason] = self.deferred_by_reason.get(reason, 0) + 1


@dataclass
class _Outage:
    """Admission deferring the launches of one namespace, from the first deferral to the next success."""

    reason: str
    retry_at: datetime
    tries: int = 1
    """Tries that were deferred, counting the first batch as one: the backoff doubles with each."""
    deferrals: int = 1
    probing: bool = False
    """A probe (the one task let through after the backoff) is out; its deferral alone doubles the backoff."""


_Done = tuple[Task, LaunchRequest, "Future[LaunchResult]"]


class DispatchTasks:
    def __init__(
        self,
        repository: LeaderStore,
        runner: JobRunner,
        clock: Clock,
        fence: Fence,
        settings: DispatchSettings | None = None,
        *,
        policy: SubmissionPolicy | None = None,
        queues: Queues | None = None,
        queue_states: QueueStates | None = None,
    ) -> None:
        self._repository = repository
        self._runner = runner
        self._clock = clock
        self._fence = fence
        self._settings = settings or DispatchSettings()
        self._policy = policy or SubmissionPolicy()
        self._queues = queues or Queues()
        if self._queues.max_in_flight is None and self._settings.max_in_flight is not None:
            self._queues = Queues(self._queues.queues, self._settings.max_in_flight)
        self._queue_states = queue_states
        self._queue_of: dict[TaskId, str | None] = {}
        """The queue each task submitted this tick was admitted under (written with its start)."""
        self._launches = 0
        self._last_served: dict[int, int] = {}
        """User -> the number of the selection that last launched one of theirs, counted over every
        tick (fair share's turn: served longest ago first). Per launch, not per tick: users served
        in one tick keep their order in the next round instead of being reordered as equals by
        their in-flight counts, which made some wait a round and a half and others half a round
        (Jain 0.93 per 1,000 launches with 1,000 users). Leader-local: a successor starts with
        none, which only reorders equals once."""
        self._outages: dict[str, _Outage] = {}
        """By namespace; kept across ticks (this object lives as long as the watcher)."""

    def __call__(self) -> DispatchReport:
        report = DispatchReport()
        self._fence.epoch()
        self._queue_of = {}
        if self._queues.enabled:
            return self._admit(report)
        s = self._settings
        done: queue.SimpleQueue[_Done] = queue.SimpleQueue()
        writes: list[StatusChange] = []
        launched_by_id: dict[TaskId, Task] = {}
        pending_writes: list[Future[None]] = []
        write_failed = threading.Event()
        with (
            ThreadPoolExecutor(s.workers, thread_name_prefix="dispatch") as launcher,
            ThreadPoolExecutor(1, thread_name_prefix="dispatch-writer") as writer,
        ):
            try:
                # First the tasks whose not-before time has come (a retry's backoff, a run_at), one
                # page a tick; then the ready ones (no such time) in id order, page after page.
                come_due = self._repository.list_come_due(self._clock.now(), limit=s.batch_size)
                in_flight, seen = self._submit(come_due, launcher, done, writes, report), len(come_due)
                after, after_priority, exhausted = 0, None, seen >= s.max_tasks_per_tick
                while not exhausted or in_flight:
                    if write_failed.is_set():
                        # The database refused a write batch (down, or the fence moved): every Job
                        # launched from here on could not be recorded either, and would only leave one
                        # more Job for the next tick to adopt. Stop launching; raise the write's error.
                        _raise_first_failure(pending_writes)
                    if not exhausted and in_flight < s.batch_size:
                        batch = self._repository.list_ready(
                            after_id=after, after_priority=after_priority, limit=s.batch_size
                        )
                        exhausted = len(batch) < s.batch_size or seen + len(batch) >= s.max_tasks_per_tick
                        if batch:
                            after, after_priority, seen = batch[-1].id, batch[-1].priority, seen + len(batch)
                        in_flight += self._submit(batch, launcher, done, writes, report)
                    else:
                        task, request, future = done.get()
                        in_flight -= 1
                        if self._settle(task, request, future, writes, report):
                            launched_by_id[task.id] = task
                    if len(writes) >= s.write_batch_size:
                        pending_writes.append(
                            _watched(writer.submit(self._write, writes, launched_by_id, report), write_failed)
                        )
                        writes = []
                if writes:
                    pending_writes.append(writer.submit(self._write, writes, launched_by_id, report))
                for write in pending_writes:
                    write.result()  # re-raises LeadershipLost / RetryableError from the writer
            except BaseException:
                launcher.shutdown(wait=False, cancel_futures=True)
                writer.shutdown(wait=False, cancel_futures=True)  # queued batches would fail the same way
                raise
        return report

    def _submit(
        self,
        batch: list[Task],
        launcher: ThreadPoolExecutor,
        done: queue.SimpleQueue[_Done],
        writes: list[StatusChange],
        report: DispatchReport,
    ) -> int:
        """Validate a batch, fail or cancel what cannot launch, submit the rest. Returns the count submitted."""
        now = self._clock.now()
        submitted = 0
        for task in batch:
            request = self._prepare(task, now, writes, report)
            if request is not None and self._launch_later(task, request[0], now, launcher, done, report):
                submitted += 1
        return submitted

    def _prepare(
        self, task: Task, now: datetime, writes: list[StatusChange], report: DispatchReport
    ) -> tuple[LaunchRequest, Submission] | None:
        """The launch request of a task that may start now, or None after writing why it cannot."""
        if task.cancel_requested:
            writes.append(task.cancel(now))
            report.cancelled += 1
            return None
        if not task.due(now):
            # A run_at written by hand (submit sets the not-before time too): one write, and the
            # index keeps the task out of every tick's reads until then.
            writes.append(task.postpone(_latest(task.run_at, task.next_attempt_at), now))
            report.postponed += 1
            return None
        try:
            valid = submission_for(task, self._policy)
        except InvalidTaskSpec as exc:
            writes.append(task.fail(str(exc), now))
            report.failed += 1
            return None
        return launch_request_of(task, valid), valid

    def _launch_later(
        self,
        task: Task,
        request: LaunchRequest,
        now: datetime,
        launcher: ThreadPoolExecutor,
        done: queue.SimpleQueue[_Done],
        report: DispatchReport,
    ) -> bool:
        if self._held_back(request.namespace, now, report):
            return False
        future = launcher.submit(self._launch, request)
        future.add_done_callback(_report_to(done, task, request))
        return True

    # -- queues ----------------------------------------------------------------------------------------
    def _admit(self, report: DispatchReport) -> DispatchReport:
        """One tick with queues: read a bounded window, count what is in flight, `select`, launch.

        The window is the come-due page plus one ready page (priority, then id), plus, when a queue
        shares fairly, the oldest ready tasks of the users with the fewest in flight: O(batch +
        users with ready work) reads, whatever the number of waiting rows.
        """
        s = self._settings
        now = self._clock.now()
        in_flight = self._repository.count_in_flight(started_since=now - timedelta(minutes=1))
        paused = self._queue_states.paused() if self._queue_states is not None else frozenset()
        in_flight = InFlight(in_flight.by_queue_user, in_flight.started_last_minute, paused)
        budget = s.batch_size
        if s.max_in_flight is not None:
            budget = min(budget, s.max_in_flight - in_flight.total)
        if budget <= 0:
            return report
        # What the queues let this tick launch (the free slots, when every task is in a limited
        # queue), not a whole batch: every row read costs about as much as a launch's share of the
        # API round trips, and a queue with 100 free slots and 500 read rows was twice as slow as no
        # queue. At least 50 rows, for the cancelled and postponed ones. Tasks of a full or paused
        # queue ahead in the window can hide others' for a tick; fair-share queues get their users'
        # heads below.
        room = self._queues.room(in_flight)
        budget = int(min(budget, room))
        size = min(s.batch_size, max(budget, 50))
        window = self._repository.list_come_due(now, limit=size)
        window += self._repository.list_ready(limit=size)
        window += self._fair_share_heads(in_flight, budget, window, now)
        writes: list[StatusChange] = []
        tasks: dict[TaskId, Task] = {}
        candidates: list[Candidate] = []
        for task in window:
            if task.id in tasks:
                continue
            tasks[task.id] = task
            if task.cancel_requested or not task.due(now):
                self._prepare(task, now, writes, report)  # cancelled or postponed: one write each
                continue
            # The queue from a plain JSON read; the whole validation runs on the selected tasks only
            # (a window is several times what one tick launches).
            claimed, profile = claimed_queue(task.info)
            name = self._queues.resolve(task.namespace, task.user_id, queue=claimed, profile=profile)
            candidates.append(Candidate(task.id, task.user_id, task.priority, name))
        chosen = select(candidates, in_flight, self._queues, budget, last_served=self._last_served)
        for c in chosen:
            self._launches += 1
            self._last_served[c.user_id] = self._launches
        done: queue.SimpleQueue[_Done] = queue.SimpleQueue()
        launched_by_id: dict[TaskId, Task] = {}
        with ThreadPoolExecutor(s.workers, thread_name_prefix="dispatch") as launcher:
            try:
                submitted = 0
                for c in chosen:
                    task = tasks[c.task_id]
                    ready = self._prepare(task, now, writes, report)  # validated: else failed, with why
                    if ready is None:
                        continue
                    self._queue_of[task.id] = c.queue
                    if self._launch_later(task, ready[0], now, launcher, done, report):
                        submitted += 1
                for _ in range(submitted):
                    task, request, future = done.get()
                    if self._settle(task, request, future, writes, report):
                        launched_by_id[task.id] = task
                    if len(writes) >= s.write_batch_size:
                        self._write(writes, launched_by_id, report)
                        writes = []
                self._write(writes, launched_by_id, report)
            except BaseException:
                launcher.shutdown(wait=False, cancel_futures=True)
                raise
        return report

    def _fair_share_heads(self, in_flight: InFlight, budget: int, window: list[Task], now: datetime) -> list[Task]:
        """The oldest ready tasks of the users a fair-share queue would serve next: the `budget` users
        served longest ago, then with the fewest in flight (a skip scan finds who has ready work),
        `budget / users` each, read only for the users the window does not already give that many
        (a user's tasks in the window are its best-ranked ones: the window is a prefix of the order)."""
        if not self._queues.fair_share or budget <= 0:
            return []
        users = self._repository.list_ready_users(limit=self._settings.fair_share_users)
        if not users:
            return []
        if len(self._last_served) > 2 * len(users):  # forget users who have no ready work left
            ready = set(users)
            self._last_served = {u: t for u, t in self._last_served.items() if u in ready}
        load: dict[int, int] = {}
        for (_, user), n in in_flight.by_queue_user.items():
            load[user] = load.get(user, 0) + n
        chosen = sorted(users, key=lambda u: (self._last_served.get(u, -1), load.get(u, 0), u))[:budget]
        per_user = -(-budget // len(chosen))
        held: dict[int, int] = {}
        for task in window:
            # The ready page's candidates (come-due tasks are not heads; cancelled ones take no turn).
            if task.next_attempt_at is None and not task.cancel_requested and task.due(now):
                held[task.user_id] = held.get(task.user_id, 0) + 1
        missing = [u for u in chosen if held.get(u, 0) < per_user]
        return self._repository.list_ready_of_users(missing, per_user=per_user)

    def _launch(self, request: LaunchRequest) -> LaunchResult:
        # Checked by the worker right before the call, not once per tick: a leader paused (GC, SIGSTOP,
        # a stalled VM) with launches queued must not create them when it resumes after a successor
        # took over. The check is local (the lease's validity), so it costs no round trip.
        self._fence.epoch()
        return self._runner.launch(request)

    def _settle(
        self,
        task: Task,
        request: LaunchRequest,
        future: Future[LaunchResult],
        writes: list[StatusChange],
        report: DispatchReport,
    ) -> bool:
        """Turn one launch outcome into a write. True if a Job now exists for the task."""
        try:
            result = future.result()
        except LeadershipLost:
            raise  # ends the tick: nothing more is launched or written
        except JobRefused as exc:
            writes.append(task.fail(str(exc), self._clock.now()))
            report.failed += 1
            return False
        except AdmissionDeferred as exc:
            report.defer(exc.reason)
            self._note_deferral(exc)
            return False
        except RetryableError as exc:
            report.defer("api")
            logger.warning("task %s stays Normal, will retry: %s", task.id, exc)
            return False
        except Exception as exc:  # an adapter bug must not stop the batch; the task stays Normal
            report.defer("unexpected")
            report.errors.append(f"task {task.id}: {exc!r}")
            logger.exception("unexpected error launching task %s (%s/%s)", task.id, request.namespace, request.job_name)
            return False
        writes.append(task.start(result.job_name, self._clock.now(), result.note, queue=self._queue_of.get(task.id)))
        self._end_outage(request.namespace)
        if result.adopted:
            report.adopted += 1
        else:
            report.launched += 1
        return True

    # -- admission deferrals -------------------------------------------------------------------------
    def _held_back(self, namespace: str, now: datetime, report: DispatchReport) -> bool:
        """True if a launch in `namespace` waits for its outage's backoff (counted as deferred); a task
        let through is the outage's probe, and holds the others back until its answer."""
        outage = self._outages.get(namespace)
        if outage is None:
            return False
        if now < outage.retry_at:
            outage.deferrals += 1
            report.defer(outage.reason)
            return True
        outage.retry_at = now + self._backoff(outage.tries)
        outage.probing = True
        return False

    def _note_deferral(self, exc: AdmissionDeferred) -> None:
        now = self._clock.now()
        outage = self._outages.get(exc.namespace)
        if outage is None or outage.reason != exc.reason:
            logger.warning(
                "launches in namespace %s are deferred (%s): tasks there stay Normal and are tried again "
                "with backoff; logged once until a launch there succeeds: %s",
                exc.namespace,
                exc.reason,
                exc,
            )
            self._outages[exc.namespace] = _Outage(exc.reason, now + self._backoff(1))
            return
        outage.deferrals += 1
        if outage.probing:  # not one of the launches submitted together before the outage was known
            outage.probing = False
            outage.tries += 1
            outage.retry_at = now + self._backoff(outage.tries)
        logger.debug("launch in namespace %s deferred again (%s): %s", exc.namespace, exc.reason, exc)

    def _end_outage(self, namespace: str) -> None:
        outage = self._outages.pop(namespace, None)
        if outage is not None:
            logger.info(
                "launches in namespace %s resume (%s cleared after %d deferred launch(es))",
                namespace,
                outage.reason,
                outage.deferrals,
            )

    @staticmethod
    def _backoff(tries: int) -> timedelta:
        return timedelta(seconds=min(DEFERRAL_BACKOFF_MAX_SECONDS, DEFERRAL_BACKOFF_SECONDS * 2 ** (tries - 1)))

    def _write(self, changes: list[StatusChange], launched: dict[TaskId, Task], report: DispatchReport) -> None:
        if not changes:
            return
        result = self._repository.apply(changes, epoch=self._fence.epoch())
        report.lost += len(result.lost)
        for task_id in result.lost:
            task = launched.get(task_id)
            if task is not None:
                self._clean_up_lost_launch(task)

    def _clean_up_lost_launch(self, task: Task) -> None:
        """We created a Job but lost the row's race: if the task was cancelled meanwhile, the Job must go."""
        current = self._repository.get(task.id)
        if current.status is TaskStatus.CANCELLED:
            logger.info("task %s was cancelled while its Job was being created; deleting the Job", task.id)
            try:
                self._runner.delete(JobRef.of(task))
            except RetryableError as exc:
                logger.warning("could not delete the Job of cancelled task %s: %s", task.id, exc)
        elif current.status is TaskStatus.NORMAL:
            # Should not happen (someone reset the row?); the next tick adopts the existing Job.
            logger.warning("task %s is Normal again after its launch; the next tick will adopt its Job", task.id)


def _latest(*times: datetime | None) -> datetime:
    return max(t for t in times if t is not None)


def _watched(write: Future[None], failed: threading.Event) -> Future[None]:
    """`write`, setting `failed` if it raises."""

    def check(done: Future[None]) -> None:
        if not done.cancelled() and done.exception() is not None:
            failed.set()

    write.add_done_callback(check)
    return write


def _raise_first_failure(writes: list[Future[None]]) -> None:
    for write in writes:
        if write.done():
            write.result()
    raise AssertionError("unreachable: a write batch failed but none is done")  # pragma: no cover


def _report_to(
    done: queue.SimpleQueue[_Done], task: Task, request: LaunchRequest
) -> Callable[[Future[LaunchResult]], None]:
    def callback(future: Future[LaunchResult]) -> None:
        done.put((task, request, future))

    return callback


__all__ = ["DispatchReport", "DispatchSettings", "DispatchTasks", "LeadershipLost"]
