"""ReleaseJobs: hand back to the cluster the Jobs nightwatch still holds for rows that are already terminal.

nightwatch's runner holds every Job it creates (on Kubernetes, the `nightwatch.io/outcome` finalizer)
until the task's outcome is stored; SyncTasks releases a Job right after writing its terminal status,
and cancelling releases it with the delete. What is left over is found here: a leader that died
between the write and the release, a release the API server refused that time, a task cancelled
while Normal whose Job appeared afterwards, a row deleted by hand. One `held` list per namespace
(finished or dying Jobs only, so the cost does not grow with the running ones), one row read per
held Job, one `release` for the lot.

Also the uninstall escape hatch (`nightwatch jobs release-finalizers`): with `everything`, every held
Job is released, whatever its row says.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from nightwatch.domain.errors import RetryableError, TaskNotFound
from nightwatch.domain.names import job_name_for
from nightwatch.domain.ports import Fence, JobRef, JobRunner, LeaderStore

logger = logging.getLogger(__name__)


@dataclass
class ReleaseReport:
    held: int = 0
    """Held Jobs looked at (finished or being deleted; every held Job with `everything`)."""
    released: int = 0
    kept: int = 0
    """Held Jobs whose row still waits for their outcome."""


class ReleaseJobs:
    def __init__(
        self,
        repository: LeaderStore,
        runner: JobRunner,
        namespaces: Iterable[str],
        *,
        fence: Fence | None = None,
    ) -> None:
        """`fence`: the leader's (a watcher); None for a command run by hand."""
        self._repository = repository
        self._runner = runner
        self._namespaces = sorted(set(namespaces))
        self._fence = fence

    def __call__(self, *, namespaces: Iterable[str] | None = None, everything: bool = False) -> ReleaseReport:
        """Raises RetryableError when no namespace could be read, LeadershipLost from the fence."""
        report = ReleaseReport()
        wanted = sorted(set(namespaces)) if namespaces is not None else self._namespaces
        failures: list[RetryableError] = []
        for namespace in wanted:
            if self._fence is not None:
                self._fence.epoch()
            try:
                held = self._runner.held(namespace, unfinished=everything)
            except RetryableError as exc:
                logger.warning("cannot list the held Jobs of %s: %s", namespace, exc)
                failures.append(exc)
                continue
            report.held += len(held)
            done = held if everything else [ref for ref in held if self._outcome_stored(ref)]
            report.kept += len(held) - len(done)
            if done:
                self._runner.release(done)
                report.released += len(done)
        if failures and len(failures) == len(wanted):
            raise failures[0]
        return report

    def _outcome_stored(self, ref: JobRef) -> bool:
        """True when the task's row is terminal, or gone, or on a later attempt than this Job's (a
        retried attempt: sync stored its outcome when it moved the task on): no row waits for it."""
        try:
            task = self._repository.get(ref.task_id)
        except TaskNotFound:
            return True
        superseded = task.attempt > 1 and ref.job_name not in (task.job_name, job_name_for(task.name, task.attempt))
        return task.is_terminal or superseded
