"""The database going away in the middle of a dispatch tick: stop launching Jobs that cannot be recorded.

Seen in the dependency-fault system test (MariaDB stopped while a 600-task burst was being dispatched):
the tick went on creating every Job it had already read, about 540 of them over 5 s, although each
write batch failed; all of them were left for the next tick to adopt. A failed write batch now ends
the launching at once.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

from nightwatch.adapters.memory import FakeClock, FixedFence, MemoryJobRunner, MemoryTaskRepository
from nightwatch.app.usecases.dispatch import DispatchSettings, DispatchTasks
from nightwatch.domain.errors import RetryableError
from nightwatch.domain.jobspec import LaunchRequest
from nightwatch.domain.model import StatusChange, TaskStatus
from nightwatch.domain.ports import LaunchResult, NewTask, WriteResult

INFO = '{"image":"busybox","command":["true"]}'


class DatabaseGoneAfterReads(MemoryTaskRepository):
    """Reads work (the tick read its batch before the outage); every write fails as a down server does."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def apply(self, changes: Sequence[StatusChange], *, epoch: int) -> WriteResult:
        if self.down:
            raise RetryableError(f"apply {len(changes)} status changes: database unavailable: (2003, refused)")
        return super().apply(changes, epoch=epoch)


class SlowRunner(MemoryJobRunner):
    """A launch takes a millisecond, as an API call does (rather than a few microseconds)."""

    def launch(self, request: LaunchRequest) -> LaunchResult:
        time.sleep(0.001)
        return super().launch(request)


def test_a_failed_write_batch_stops_the_launches_of_the_tick() -> None:
    repo, runner, clock = DatabaseGoneAfterReads(), SlowRunner(), FakeClock()
    fence = FixedFence(repo.advance_epoch())
    for i in range(1000):
        repo.add(NewTask(f"t-{i}", "default", INFO, 1), clock.now())
    dispatch = DispatchTasks(
        repo, runner, clock, fence, DispatchSettings(batch_size=1000, workers=4, write_batch_size=50)
    )
    repo.down = True

    with pytest.raises(RetryableError, match="database unavailable"):
        dispatch()

    # The first write batch (50 launches) fails; what the 4 workers had started by then may finish.
    # Before the fix every one of the 1000 Jobs was created.
    created = len(runner.jobs)
    assert created < 300, f"{created} Jobs created after the database refused the first write"
    assert repo.count_by_status() == {"Normal": 1000}

    # The database is back: the next tick adopts the Jobs created and launches the rest, once each.
    repo.down = False
    report = dispatch()
    assert (report.launched, report.adopted) == (1000 - created, created)
    assert repo.count_by_status() == {str(TaskStatus.PENDING): 1000}
    assert len(runner.jobs) == 1000
