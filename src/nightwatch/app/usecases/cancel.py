"""Cancellation: users flag a task (RequestCancel); the leader acts on the flag (CancelTasks).

The flag changes neither status nor version, so a dispatch racing with the request still wins its
compare-and-set; the Job it created is then deleted by the next CancelTasks tick.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from nightwatch.domain.errors import RetryableError
from nightwatch.domain.model import StatusChange, Task, TaskId, TaskStatus
from nightwatch.domain.ports import Clock, Fence, JobRef, JobRunner, LeaderStore, TaskCommands

logger = logging.getLogger(__name__)


class RequestCancel:
    """Raises TaskNotFound, InvalidTransition (already terminal), RetryableError."""

    def __init__(self, repository: TaskCommands) -> None:
        self._repository = repository

    def __call__(self, task_id: TaskId) -> Task:
        return self._repository.request_cancel(task_id)


@dataclass
class CancelReport:
    cancelled: int = 0
    deferred: int = 0
    lost: int = 0


class CancelSettings(BaseModel):
    """How much one cancel tick takes on (the `cancel:` configuration section)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_size: int = Field(default=500, gt=0)
    """Cancellation requests handled per tick; the next tick takes the rest."""


class CancelTasks:
    """One tick: Normal -> Cancelled directly; Pending/Running -> delete the Job -> Cancelled."""

    def __init__(
        self,
        repository: LeaderStore,
        runner: JobRunner,
        clock: Clock,
        fence: Fence,
        settings: CancelSettings | None = None,
    ) -> None:
        self._repository = repository
        self._runner = runner
        self._clock = clock
        self._fence = fence
        self._settings = settings or CancelSettings()

    def __call__(self) -> CancelReport:
        report = CancelReport()
        tasks = self._repository.list_cancel_requested(limit=self._settings.batch_size)
        if not tasks:
            return report
        changes: list[StatusChange] = []
        for task in tasks:
            if task.status is not TaskStatus.NORMAL:
                # Like dispatch: a leader that lost its lease must not act on the cluster any more.
                self._fence.epoch()
                try:
                    self._runner.delete(JobRef.of(task))
                except RetryableError as exc:
                    logger.warning("could not delete the Job of task %s yet: %s", task.id, exc)
                    report.deferred += 1
                    continue
            changes.append(task.cancel(self._clock.now()))
        if changes:
            result = self._repository.apply(changes, epoch=self._fence.epoch())
            report.cancelled, report.lost = len(result.applied), len(result.lost)
        return report
