"""CachedCounts, the one count cache behind /api/v1/summary (2 s) and the /metrics gauges (5 s)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime

import pytest

from nightwatch.adapters.memory import MemoryTaskRepository
from nightwatch.app.counts import CachedCounts
from nightwatch.app.metrics import TaskCountCollector
from nightwatch.domain.errors import RetryableError
from nightwatch.domain.ports import NewTask

NOW = datetime(2024, 1, 1, tzinfo=UTC)


class Counting(MemoryTaskRepository):
    def __init__(self, *, delay: float = 0.0) -> None:
        super().__init__()
        self.calls: list[int | None] = []
        self.delay = delay
        self.down = False

    def count_by_status(self, *, user_id: int | None = None) -> Mapping[str, int]:
        self.calls.append(user_id)
        time.sleep(self.delay)
        if self.down:
            raise RetryableError("database unreachable")
        return super().count_by_status(user_id=user_id)


class Ticking:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def add(repository: MemoryTaskRepository, name: str, user_id: int = 0) -> None:
    repository.add(NewTask(name, "default", '{"image": "b"}', user_id), NOW)


def test_counts_once_per_scope_and_period_then_again() -> None:
    repository, clock = Counting(), Ticking()
    counts = CachedCounts(repository, 2.0, clock=clock)
    add(repository, "a", user_id=1)
    assert [counts(1) for _ in range(5)] == [{"Normal": 1}] * 5
    assert counts() == {"Normal": 1} and repository.calls == [1, None]  # each scope counted once
    add(repository, "b", user_id=1)
    clock.now += 1.9
    assert counts(1) == {"Normal": 1}  # still within the period
    clock.now += 0.2
    assert counts(1) == {"Normal": 2} and repository.calls == [1, None, 1]


def test_a_failed_count_raises_and_caches_nothing() -> None:
    repository, clock = Counting(), Ticking()
    counts = CachedCounts(repository, 5.0, clock=clock)
    repository.down = True
    with pytest.raises(RetryableError):
        counts()
    repository.down = False
    assert counts() == {} and repository.calls == [None, None]


def test_callers_asking_at_once_share_one_count() -> None:
    repository = Counting(delay=0.2)
    counts = CachedCounts(repository, 2.0)
    answers: list[Mapping[str, int]] = []
    threads = [threading.Thread(target=lambda: answers.append(counts(7))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 8 and repository.calls == [7]


def normal_gauge(collector: TaskCountCollector) -> float:
    family = next(f for f in collector.collect() if f.name == "nightwatch_tasks")
    return float(next(s.value for s in family.samples if s.labels["status"] == "Normal"))


def test_the_metrics_collector_counts_through_the_cache() -> None:
    repository = Counting()
    add(repository, "a")
    collector = TaskCountCollector(repository, cache_seconds=5.0)
    assert [normal_gauge(collector) for _ in range(3)] == [1, 1, 1] and repository.calls == [None]


def test_in_an_outage_the_metrics_collector_keeps_the_last_counts_and_tries_again() -> None:
    repository = Counting()
    add(repository, "a")
    collector = TaskCountCollector(repository, cache_seconds=0.0)
    assert normal_gauge(collector) == 1
    repository.down = True
    add(repository, "b")
    assert normal_gauge(collector) == 1 and len(repository.calls) == 2  # a scrape never fails
    repository.down = False
    assert normal_gauge(collector) == 2
