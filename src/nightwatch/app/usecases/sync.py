"""SyncTasks: one tick that writes what the cluster says about in-flight tasks back to their rows.

All in-flight tasks are read first (in large pages) and observed with ONE JobRunner call, so the
runner can list Jobs per namespace instead of fetching one Job per task; only rows whose state
changed are written, in batches, each under the current fencing epoch.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from nightwatch.domain.errors import InvalidTaskSpec, InvalidTransition, RetryableError
from nightwatch.domain.jobspec import parse_info
from nightwatch.domain.model import IN_FLIGHT_STATUSES, StatusChange, Task, TaskId, TaskStatus
from nightwatch.domain.ports import Clock, Fence, JobRef, JobRunner, LeaderStore, WriteResult
from nightwatch.domain.retries import BUILT_IN_DEFAULT, RetryPolicy, RetrySpec, decide, resolve_policy, retry_spec_of

logger = logging.getLogger(__name__)


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


class RetrySettings(BaseModel):
    """The deployment's retry policy (the `retry:` configuration section); a task's `info.retry`
    overrides it key by key (see docs/retries.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default: RetrySpec = BUILT_IN_DEFAULT


@dataclass
class SyncReport:
    observed: int = 0
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
        jitter: random.Random | None = None,
    ) -> None:
        self._repository = repository
        self._runner = runner
        self._clock = clock
        self._fence = fence
        self._settings = settings or SyncSettings()
        self._retry = retry or RetrySettings()
        self._jitter = jitter or random.Random()

    def __call__(self) -> SyncReport:
        report = SyncReport()
        tasks = self._in_flight()
        if not tasks:
            return report
        self._fence.epoch()  # do not spend API calls when we are not the leader any more
        refs = {t.id: JobRef.of(t) for t in tasks}
        observations = self._runner.observe(list(refs.values()))
        report.observed = len(tasks)
        now = self._clock.now()
        changes: list[StatusChange] = []
        for task in tasks:
            observation = observations.get(task.id)
            if observation is None:  # its namespace could not be read this tick (the runner logged why)
                continue
            try:
                policy = self._policy_of(task) if observation.failed else None
                change = decide(task, observation, policy or RetryPolicy(), now, self._jitter.random())
            except InvalidTransition as exc:  # a rule bug must not stop the other rows
                logger.error("task %s: %s", task.id, exc)
                continue
            if change is not None:
                changes.append(change)
        # Two writers: one chunk's statement is built while the database runs the other's. The
        # chunks touch disjoint rows, and each checks the fence just before it is sent.
        with ThreadPoolExecutor(self._settings.writers, thread_name_prefix="sync-writer") as writers:
            pending = [
                writers.submit(self._write, changes[start : start + self._settings.write_batch_size])
                for start in range(0, len(changes), self._settings.write_batch_size)
            ]
            for future in pending:
                result = future.result()  # re-raises LeadershipLost / RetryableError from a writer
                report.changed += len(result.applied)
                report.lost += len(result.lost)
                report.released += self._release(result, changes, refs)
                _count_attempts(report, result, changes)
        return report

    def _policy_of(self, task: Task, profile_default: RetrySpec | None = None) -> RetryPolicy:
        """The task's retry policy. A row whose `info.retry` became invalid after dispatch (edited by
        hand) gets the deployment's default, and a log line: its attempt must still end or retry."""
        try:
            own = retry_spec_of(parse_info(task.info))
        except InvalidTaskSpec as exc:
            logger.warning("task %s: %s; using the default retry policy", task.id, exc)
            own = None
        return resolve_policy(own, self._retry.default, profile_default)

    def _release(self, result: WriteResult, changes: list[StatusChange], refs: dict[TaskId, JobRef]) -> int:
        """Let the cluster collect the Jobs whose outcome this write stored (only rows really written:
        a row someone else moved on keeps its Job for whoever did). A failure is left to ReleaseJobs."""
        # A retry (back to Normal) is the end of its attempt's Job too.
        terminal = {c.task_id for c in changes if c.status.is_terminal or c.status is TaskStatus.NORMAL}
        done = [refs[task_id] for task_id in result.applied if task_id in terminal]
        if not done:
            return 0
        try:
            self._runner.release(done)
        except RetryableError as exc:
            logger.warning("stored the outcome of %d task(s) but could not release their Jobs yet: %s", len(done), exc)
            return 0
        return len(done)

    def _write(self, chunk: list[StatusChange]) -> WriteResult:
        return self._repository.apply(chunk, epoch=self._fence.epoch())

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
