"""SyncTasks: one tick that writes what the cluster says about in-flight tasks back to their rows.

A full pass reads every in-flight task (in large pages) and observes them with ONE JobRunner call, so
the runner can list Jobs per namespace instead of fetching one Job per task; only rows whose state
changed are written, in batches, each under the current fencing epoch.

With a runner that pushes changes (a `ChangeFeed`: the Kubernetes informer, the local supervisor),
a full pass runs only when this replica's leadership term begins and then every `resync_seconds`
(it also tells the runner which namespaces to follow); the ticks in between read only the rows of
the tasks whose Job changed (`get_many`), and observe only those, from the runner's cache. The
runner wakes the tick when a change arrives. A term's queued changes die with it: a new epoch (or
`step_down`) drops them, and every write batch checks that the epoch is still the pass's own.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as all_done
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from nightwatch.domain.errors import InvalidTaskSpec, InvalidTransition, LeadershipLost, RetryableError
from nightwatch.domain.jobspec import parse_info
from nightwatch.domain.model import IN_FLIGHT_STATUSES, StatusChange, Task, TaskId, TaskStatus
from nightwatch.domain.ports import ChangeFeed, Clock, Fence, JobRef, JobRunner, LeaderStore, WriteResult
from nightwatch.domain.profiles import ProfileCatalog, ProfileSource
from nightwatch.domain.retries import BUILT_IN_DEFAULT, RetryPolicy, RetrySpec, decide, resolve_policy, retry_spec_of

logger = logging.getLogger(__name__)

WINDOW_STEP_SECONDS = 0.01
"""How often a round waiting out the batch window looks whether a whole write batch is queued."""
RELEASE_CHUNK = 100
"""Jobs released between two checks that no tick is running (see `SyncTasks._release_logged`)."""


class SyncSettings(BaseModel):
    """How one sync tick reads and writes (the `sync:` configuration section)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    page_size: int = Field(default=5000, gt=0)
    """In-flight tasks read per query."""
    write_batch_size: int = Field(default=1000, gt=0)
    """Status rows written per statement."""
    writers: int = Field(default=2, gt=0)
    """Write batches in flight at once."""
    max_tasks_per_tick: int = Field(default=200_000, gt=0)
    """In-flight tasks observed by one tick at most."""
    resync_seconds: float = Field(default=600.0, gt=0)
    """With a runner that pushes changes: how often a full pass reads and observes every in-flight task
    (configured as `watchers.sync.resync_seconds`)."""
    batch_window_seconds: float = Field(default=0.1, ge=0)
    """With a runner that pushes changes: a round that would start less than this after the last one
    waits out the rest first, so a stream of changes is written in batches rather than one tick per
    event; unless a whole write batch is queued already (a burst)."""
    max_rounds_per_tick: int = Field(default=20, gt=0)
    """Change batches one tick takes at most (changes arriving while it writes are taken in the same tick)."""


class RetrySettings(BaseModel):
    """The deployment's retry policy (the `retry:` configuration section); a task's `info.retry`
    overrides it key by key (see docs/retries.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default: RetrySpec = BUILT_IN_DEFAULT


@dataclass
class SyncReport:
    observed: int = 0
    full: bool = False
    """True when this tick read every in-flight task (a term's first tick, a resync, a polled runner)."""
    changed: int = 0
    lost: int = 0
    released: int = 0
    """Jobs handed back to the cluster because their task's terminal status (or retry) is now stored."""
    attempts: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Failed attempts whose outcome was written, by (failure class, outcome: "retried" or "failed")."""


class SyncTasks:
    def __init__(
        self,
        repository: LeaderStore,
        runner: JobRunner,
        clock: Clock,
        fence: Fence,
        settings: SyncSettings | None = None,
        *,
        retry: RetrySettings | None = None,
        profiles: ProfileSource | None = None,
        jitter: random.Random | None = None,
        wake: Callable[[], None] = lambda: None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`wake`: asks for a tick now (the runner calls it, from its own thread, when a change arrives).
        `profiles`: the Job profiles in force, whose `retry` a failed task's policy inherits."""
        self._repository = repository
        self._runner = runner
        self._clock = clock
        self._fence = fence
        self._settings = settings or SyncSettings()
        self._retry = retry or RetrySettings()
        self._profiles: ProfileSource = profiles or ProfileCatalog()
        self._jitter = jitter or random.Random()
        self._wake = wake
        self._monotonic = monotonic
        self._sleep = sleep
        self._last_round = float("-inf")
        self._feed: ChangeFeed | None = runner if isinstance(runner, ChangeFeed) and runner.follows_changes else None
        self._releases: ThreadPoolExecutor | None = None
        """Releases of the incremental path, off the path from a change to its row (created on first use)."""
        self._idle = threading.Event()
        """Set between ticks: background releases go a chunk at a time, each once no tick is running."""
        self._idle.set()
        self._term: int | None = None
        """The epoch whose changes the feed queues (None: none followed yet)."""
        self._next_full = 0.0
        self._not_yet_in_flight: set[TaskId] = set()
        """Changed Jobs whose task was still Normal when read: read again next tick."""

    def step_down(self) -> None:
        """Leadership is gone: stop following changes at once and drop the queued ones."""
        self._term = None
        if self._feed is not None:
            self._feed.stop_following()

    def __call__(self) -> SyncReport:
        self._idle.clear()
        try:
            return self._tick()
        finally:
            self._idle.set()

    def _tick(self) -> SyncReport:
        if self._feed is None:
            return self._full_pass(self._fence.epoch, None)
        epoch = self._fence.epoch()  # not the leader: nothing read, nothing followed
        if epoch != self._term:
            # A new term: whatever was queued under another epoch is not ours to write.
            self._feed.stop_following()
            self._term = None
            self._not_yet_in_flight = set()
        if self._term is None or self._monotonic() >= self._next_full:
            self._next_full = self._monotonic() + self._settings.resync_seconds
            try:
                report = self._full_pass(lambda: self._same_term(epoch), self._feed)
            except BaseException:
                # It took the queued changes and read nothing (the database, the fence): only another
                # full pass can find them, the next tick's, not the resync's.
                self._next_full = 0.0
                raise
            self._term = epoch
            return report
        report = SyncReport()
        carried, self._not_yet_in_flight = self._not_yet_in_flight, set()
        finished: list[JobRef] = []
        taken: set[TaskId] = set()

        def later(done: list[JobRef]) -> int:
            finished.extend(done)
            return 0  # counted when sent, at the tick's end

        try:
            # One set of writers for the whole tick: a round reads while the last one's writes finish
            # (only a row with a write in flight waits for it, see `_Writes.settle`).
            with self._writes(lambda: self._same_term(epoch), report, later) as writes:
                for _ in range(self._settings.max_rounds_per_tick):
                    ids, carried = self._feed.take_changes() | carried, set()
                    wait = self._last_round + self._settings.batch_window_seconds - self._monotonic()
                    if wait > 0 and len(ids) < self._settings.write_batch_size:
                        ids |= self._gather(self._feed, wait, self._settings.write_batch_size - len(ids))
                    if not ids:
                        break
                    taken |= ids
                    writes.raise_failure()
                    self._last_round = self._monotonic()
                    if self._changed_round(sorted(ids), writes):
                        # A namespace could not be read (a 429, an outage): its changes would wait for the
                        # resync.
                        self._next_full = 0.0
                        self._wake()
                        break
                else:
                    self._wake()  # more is queued than one tick takes: another tick right after this one
        except BaseException:
            # The changes taken are not all written (the database, the API, the fence): they are gone
            # from the feed, so the next tick is a full pass, which reads every in-flight row again, and
            # reads these again after it (a row still Normal now is not in that pass).
            self._next_full = 0.0
            self._not_yet_in_flight |= taken
            raise
        finally:
            # Released once the tick has caught up, not per round: each release is a request and a
            # watch event of its own, and in a burst they would compete with the rows still to write.
            report.released += self._release_in_background(finished)
        return report

    def _gather(self, feed: ChangeFeed, wait: float, wanted: int) -> set[TaskId]:
        """The changes queued within `wait` seconds (the rest of the batch window), so a stream of changes
        is written in batches; returned as soon as `wanted` are in (a burst fills a batch at once)."""
        ids: set[TaskId] = set()
        steps = max(1, round(wait / WINDOW_STEP_SECONDS))
        for _ in range(steps):
            self._sleep(wait / steps)
            ids |= feed.take_changes()
            if len(ids) >= wanted:
                break
        return ids

    def _changed_round(self, ids: list[TaskId], writes: _Writes) -> int:
        """Read, observe and write the rows of changed Jobs a slice at a time, so one slice's rows are
        read while the previous slice's writes run; returns how many could not be observed."""
        unseen = 0
        for start in range(0, len(ids), self._settings.write_batch_size):
            chunk = ids[start : start + self._settings.write_batch_size]
            writes.settle(chunk)  # never read a row whose last change is still being written
            rows = self._repository.get_many(chunk)
            # A Job's events can arrive before dispatch has written its task Pending (a Job completes
            # in 300 ms; a write batch can wait out a 429): kept for the next tick, not dropped, or the
            # task would wait for the resync. Terminal rows are dropped (their Jobs' last events).
            self._not_yet_in_flight |= {t.id for t in rows if t.status is TaskStatus.NORMAL}
            tasks = [t for t in rows if t.status in IN_FLIGHT_STATUSES and not t.cancel_requested]
            unseen += self._observe(tasks, writes)
        return unseen

    def _same_term(self, epoch: int) -> int:
        """The epoch to write under, only if it is still the one the changes were heard in."""
        current = self._fence.epoch()
        if current != epoch:
            raise LeadershipLost(f"fencing epoch {epoch} is over ({current} now); not writing what it heard")
        return current

    def _full_pass(self, epoch: Callable[[], int], feed: ChangeFeed | None) -> SyncReport:
        report = SyncReport(full=True)
        if feed is not None:
            # What was queued so far is in this pass, which reads the rows after this. Taken BEFORE the
            # read, not after: a task dispatched after the read, whose Job changed before the take, would
            # lose its change to the take and wait for the next resync (seen: tasks stuck Pending after a
            # failover, a 429 window, a database outage; each starts with a full pass).
            # A taken change whose row is not in flight yet (its Job's events beat dispatch's Pending write)
            # is read again after this pass, like a round's: no other event may come for it.
            self._not_yet_in_flight |= feed.take_changes()
        tasks = self._in_flight()
        self._not_yet_in_flight -= {t.id for t in tasks}
        if feed is not None:
            epoch()  # never follow anything for a term that is over
            feed.follow({t.namespace for t in tasks}, self._wake)
            try:
                epoch()  # a step-down while `follow` started watches must not leave them running
            except LeadershipLost:
                feed.stop_following()
                raise
        if not tasks:
            return report
        if self._observe_and_write(tasks, epoch, report) and feed is not None:
            # Tasks it could not observe (a namespace unreadable, a Job or its pods unreadable now) get
            # no event of their own again: the next tick is a full pass too, not the resync's.
            self._next_full = 0.0
        return report

    def _observe_and_write(self, tasks: list[Task], epoch: Callable[[], int], report: SyncReport) -> int:
        """Observe `tasks`, write what changed and release what ended; returns how many could not be
        observed this time."""
        if not tasks:
            return 0
        with self._writes(epoch, report, self._release_now) as writes:
            return self._observe(tasks, writes)

    def _writes(self, epoch: Callable[[], int], report: SyncReport, release: Callable[[list[JobRef]], int]) -> _Writes:
        return _Writes(self._write, self._settings, epoch, report, release)

    def _observe(self, tasks: list[Task], writes: _Writes) -> int:
        """Observe `tasks` and hand what changed to `writes`; returns how many could not be observed."""
        if not tasks:
            return 0
        writes.epoch()  # do not spend API calls when we are not the leader any more
        refs = {t.id: JobRef.of(t) for t in tasks}
        observations = self._runner.observe(list(refs.values()))
        writes.report.observed += len(tasks)
        now = self._clock.now()
        changes: list[StatusChange] = []
        unseen = 0
        for task in tasks:
            observation = observations.get(task.id)
            if observation is None:  # its namespace could not be read this tick (the runner logged why)
                unseen += 1
                continue
            try:
                policy = self._policy_of(task) if observation.failed else None
                change = decide(task, observation, policy or RetryPolicy(), now, self._jitter.random())
            except InvalidTransition as exc:  # a rule bug must not stop the other rows
                logger.error("task %s: %s", task.id, exc)
                continue
            if change is not None:
                changes.append(change)
        writes.submit(changes, refs)
        return unseen

    def _policy_of(self, task: Task) -> RetryPolicy:
        """The task's retry policy: its `info.retry`, then its profile's `retry`, then `retry.default`.
        A row whose `info.retry` (or profile) became invalid after dispatch (edited by hand, a profile
        removed by a reload) gets what is left, and a log line: its attempt must still end or retry."""
        try:
            info = parse_info(task.info)
        except InvalidTaskSpec as exc:
            logger.warning("task %s: %s; using the default retry policy", task.id, exc)
            return resolve_policy(None, self._retry.default)
        try:
            own = retry_spec_of(info)
        except InvalidTaskSpec as exc:
            logger.warning("task %s: %s; using the default retry policy", task.id, exc)
            own = None
        try:
            profile_default = self._profiles.catalog().resolve(task.namespace, info.get("profile")).retry
        except InvalidTaskSpec as exc:
            logger.warning("task %s: %s; using the deployment's retry policy", task.id, exc)
            profile_default = None
        return resolve_policy(own, self._retry.default, profile_default)

    def _release_in_background(self, finished: list[JobRef]) -> int:
        """Let the cluster collect these Jobs, off the path from a change to its row: one request per
        Job must not delay the next change (a release is harmless whoever leads by the time it is sent)."""
        if not finished:
            return 0
        if self._releases is None:
            self._releases = ThreadPoolExecutor(1, thread_name_prefix="sync-release")
        self._releases.submit(self._release_logged, list(finished))
        return len(finished)

    def _release_logged(self, finished: list[JobRef]) -> None:
        try:
            for start in range(0, len(finished), RELEASE_CHUNK):
                # A release is one request per Job and never urgent: in a burst it must not take the
                # interpreter and the API server from the ticks still writing rows. Between ticks it goes.
                self._idle.wait()
                self._release_now(finished[start : start + RELEASE_CHUNK])
        except Exception:  # nobody waits for this future: say it here
            logger.exception("releasing %d Job(s) failed unexpectedly; ReleaseJobs will find them", len(finished))

    def _release_now(self, finished: list[JobRef]) -> int:
        if not finished:
            return 0
        try:
            self._runner.release(finished)
        except RetryableError as exc:
            n = len(finished)
            logger.warning("stored the outcome of %d task(s) but could not release their Jobs yet: %s", n, exc)
            return 0
        return len(finished)

    def _write(self, chunk: list[StatusChange], epoch: Callable[[], int]) -> WriteResult:
        return self._repository.apply(chunk, epoch=epoch())

    def _in_flight(self) -> list[Task]:
        """Every in-flight task, except those being cancelled (CancelTasks owns them)."""
        tasks: list[Task] = []
        after = 0
        while len(tasks) < self._settings.max_tasks_per_tick:
            page = self._repository.list_by_status(IN_FLIGHT_STATUSES, after_id=after, limit=self._settings.page_size)
            tasks.extend(t for t in page if not t.cancel_requested)
            if len(page) < self._settings.page_size:
                break
            after = page[-1].id
        return tasks


def _count_attempts(report: SyncReport, result: WriteResult, changes: list[StatusChange]) -> None:
    applied = set(result.applied)
    for change in changes:
        if change.failure_class and change.task_id in applied:
            outcome = "retried" if change.status is TaskStatus.NORMAL else "failed"
            report.attempts[(change.failure_class, outcome)] += 1


class _Writes:
    """The write batches of one pass or round, `writers` in flight at once: a chunk's statement is built
    while the database runs the other's (the chunks touch disjoint rows, and each checks the fence just
    before it is sent). Leaving the block waits for every batch and re-raises the first failure
    (LeadershipLost, RetryableError); each batch's finished Jobs go to `release` in submission order.

    Only rows really written release their Job (a row someone else moved on keeps its Job for whoever
    did); a failure is left to ReleaseJobs."""

    def __init__(
        self,
        write: Callable[[list[StatusChange], Callable[[], int]], WriteResult],
        settings: SyncSettings,
        epoch: Callable[[], int],
        report: SyncReport,
        release: Callable[[list[JobRef]], int],
    ) -> None:
        """`release`: called with each batch's finished Jobs; returns how many it released."""
        self._write = write
        self._batch_size = settings.write_batch_size
        self.epoch = epoch
        self.report = report
        self._release = release
        self._pool = ThreadPoolExecutor(settings.writers, thread_name_prefix="sync-writer")
        self._pending: list[tuple[Future[WriteResult], list[StatusChange], dict[TaskId, JobRef]]] = []
        self._writing: dict[TaskId, Future[WriteResult]] = {}
        """The last write submitted for each task."""

    def submit(self, changes: list[StatusChange], refs: dict[TaskId, JobRef]) -> None:
        for start in range(0, len(changes), self._batch_size):
            batch = changes[start : start + self._batch_size]
            future = self._pool.submit(self._write, batch, self.epoch)
            self._pending.append((future, batch, refs))
            self._writing.update((c.task_id, future) for c in batch)

    def settle(self, task_ids: Collection[TaskId]) -> None:
        """Wait for the writes in flight of these tasks (not the others'): their rows are to be read
        again, and a read before the write lands would see, and compare against, the old version."""
        futures = {f for t in task_ids if (f := self._writing.get(t)) is not None and not f.done()}
        if futures:
            all_done(futures)

    def raise_failure(self) -> None:
        """Re-raise the first failure of a write done so far (the tick stops at once, not at its end)."""
        for future, _batch, _refs in self._pending:
            if future.done() and future.exception() is not None:
                future.result()

    def __enter__(self) -> _Writes:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            for future, batch, refs in self._pending:
                result = future.result()  # re-raises LeadershipLost / RetryableError from a writer
                self.report.changed += len(result.applied)
                self.report.lost += len(result.lost)
                _count_attempts(self.report, result, batch)
                # A retry (back to Normal) is the end of its attempt's Job too.
                ended = {c.task_id for c in batch if c.status.is_terminal or c.status is TaskStatus.NORMAL}
                done = [refs[task_id] for task_id in result.applied if task_id in ended]
                if done:
                    self.report.released += self._release(done)
        finally:
            self._pool.shutdown(wait=True)
