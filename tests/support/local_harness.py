"""The contract suite's harness for `LocalJobRunner`: real processes in a temporary state directory.

Kept out of test_runner.py so that adding the backend there is a one-line change.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from nightwatch.adapters.local.runner import LocalJobRunner
from nightwatch.adapters.local.settings import LocalRunnerSettings
from nightwatch.domain.jobspec import JobSpec, LaunchRequest
from nightwatch.domain.model import TaskId
from nightwatch.domain.observation import JobPhase
from nightwatch.domain.ports import JobRef, JobRunner

Outcome = Literal["succeed", "fail", "run"]

SCRIPTS = {"succeed": "echo ok", "fail": "echo boom >&2; exit 3", "run": "sleep 60"}
PHASES = {"succeed": JobPhase.SUCCEEDED, "fail": JobPhase.FAILED, "run": JobPhase.ACTIVE}
SETTLE_SECONDS = 10.0


class LocalHarness:
    def __init__(self, state_dir: Path) -> None:
        self.local = LocalJobRunner(LocalRunnerSettings(local_state_dir=str(state_dir)))
        self.runner: JobRunner = self.local
        self.state_dir = state_dir
        self.launched: list[JobRef] = []

    def request(self, task_id: int, name: str, outcome: Outcome) -> LaunchRequest:
        spec = JobSpec(image="busybox", command=("sh", "-c"), args=(SCRIPTS[outcome],), backoffLimit=0)
        request = LaunchRequest(TaskId(task_id), name, "default", spec)
        self.launched.append(JobRef(request.task_id, request.namespace, request.job_name))
        return request

    def settle(self, ref: JobRef, outcome: Outcome) -> None:
        wait_for_phase(self.local, ref, PHASES[outcome])

    def add_foreign_job(self, namespace: str, name: str) -> None:
        job = self.state_dir / namespace / name
        job.mkdir(parents=True)
        (job / "task_id").write_text("someone-else")

    def close(self) -> None:
        for ref in self.launched:  # no `sleep 60` outlives the test
            self.local.delete(ref)
        self.local.close()


def wait_for_phase(runner: LocalJobRunner, ref: JobRef, phase: JobPhase, timeout: float = SETTLE_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while True:
        seen = runner.observe([ref])[ref.task_id]
        if seen.phase is phase:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{ref.job_name} is {seen}, not {phase} after {timeout} s")
        time.sleep(0.05)


@contextmanager
def local_harness() -> Iterator[LocalHarness]:
    with tempfile.TemporaryDirectory(prefix="nightwatch-local-", ignore_cleanup_errors=True) as tmp:
        harness = LocalHarness(Path(tmp))
        try:
            yield harness
        finally:
            harness.close()
