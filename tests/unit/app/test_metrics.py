"""The retry metrics (issue 18): failed attempts by class and outcome, tasks waiting for a retry."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from nightwatch.adapters.memory import FakeClock, MemoryTaskRepository
from nightwatch.app.metrics import Metrics
from nightwatch.app.usecases.sync import SyncReport
from nightwatch.domain.ports import NewTask


def test_failed_attempts_are_counted_by_class_and_outcome() -> None:
    metrics = Metrics()
    metrics.record_report("sync", SyncReport(attempts=Counter({("oom", "retried"): 2, ("exit_code", "failed"): 1})))
    value = metrics.registry.get_sample_value
    assert value("nightwatch_task_attempts_failed_total", {"failure_class": "oom", "outcome": "retried"}) == 2
    assert value("nightwatch_task_attempts_failed_total", {"failure_class": "exit_code", "outcome": "failed"}) == 1


def test_tasks_waiting_for_a_retry_are_a_gauge() -> None:
    repo, clock = MemoryTaskRepository(), FakeClock()
    epoch = repo.advance_epoch()
    task = repo.add(NewTask("t", "default", "{}"), clock.now())
    repo.apply([task.start("t", clock.now())], epoch=epoch)
    until = clock.now() + timedelta(seconds=30)
    repo.apply([repo.get(task.id).retry(until, clock.now(), "evicted")], epoch=epoch)
    metrics = Metrics()
    metrics.watch_tasks(repo, cache_seconds=0)
    assert metrics.registry.get_sample_value("nightwatch_tasks_waiting_retry") == 1
