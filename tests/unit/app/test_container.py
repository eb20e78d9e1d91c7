"""The composition root: selectors follow configuration; tests override providers; the service runs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from dependency_injector import providers

from nightwatch.adapters.memory import MemoryJobRunner, MemoryLeaderLock, MemoryLockServer, MemoryTaskRepository
from nightwatch.app.container import build_container
from nightwatch.domain.model import TaskStatus
from nightwatch.domain.observation import JobObservation, JobPhase
from tests.support.waiting import wait_until

FAST = {
    "database": {"url": "memory://"},
    "http": {"enabled": False},
    "lock": {"ttl_seconds": 1.0, "retry_interval_seconds": 0.05},
    "watchers": {
        "dispatch": {"interval_seconds": 0.05},
        "sync": {"interval_seconds": 0.05},
        "cancel": {"interval_seconds": 0.05},
    },
}


def test_selectors_follow_configuration(tmp_path: Path) -> None:
    memory = build_container({"database": {"url": "memory://"}}, load_plugins=False)
    assert isinstance(memory.repository(), MemoryTaskRepository)
    assert isinstance(memory.lock(), MemoryLeaderLock)
    sqlite = build_container(
        {"database": {"url": f"sqlite:///{tmp_path / 'x.db'}"}, "runner": {"local_state_dir": str(tmp_path / "j")}},
        load_plugins=False,
    )
    from nightwatch.adapters.local import LocalJobRunner
    from nightwatch.adapters.sql import SqlTaskRepository

    assert isinstance(sqlite.repository(), SqlTaskRepository)
    assert isinstance(sqlite.runner(), LocalJobRunner)
    sqlite.shutdown_resources()


def test_nothing_connects_until_asked() -> None:
    # A Redis lock and a Kubernetes runner that could not connect: building the container is still fine.
    container = build_container(
        {"lock": {"backend": "redis", "redis_urls": ["redis://127.0.0.1:1/0"]}, "runner": {"backend": "kubernetes"}},
        load_plugins=False,
    )
    assert container.submit_task is not None


def test_the_service_runs_a_task_life_on_overridden_adapters() -> None:
    container = build_container(FAST, load_plugins=False)
    runner = MemoryJobRunner()
    container.runner.override(providers.Object(runner))
    repo = container.repository()
    service = container.service()
    service.start()
    try:
        task = container.submit_task()("life", "default", {"image": "busybox", "command": ["true"]})
        wait_until(lambda: repo.get(task.id).status is TaskStatus.PENDING, 5.0)
        runner.set_observation("default", "life", JobObservation(JobPhase.SUCCEEDED, "Completed", "ok"))
        wait_until(lambda: repo.get(task.id).status is TaskStatus.SUCCEEDED, 5.0)
        assert container.leadership().is_leader
        ready, checks = container.readiness()()
        assert ready and checks["role"] == "leader"
    finally:
        service.stop(grace_seconds=5)
    assert not container.leadership().is_leader


def test_a_standby_does_nothing_until_the_leader_goes() -> None:
    server = MemoryLockServer()
    leader = build_container(FAST, load_plugins=False)
    standby = build_container(FAST, load_plugins=False)
    shared_repo, runner = MemoryTaskRepository(), MemoryJobRunner()
    for c, owner in ((leader, "a"), (standby, "b")):
        c.repository.override(providers.Object(shared_repo))
        c.runner.override(providers.Object(runner))
        c.lock.override(providers.Object(MemoryLeaderLock(owner, ttl_seconds=1.0, server=server)))
    first = leader.service()
    first.start()
    wait_until(lambda: leader.leadership().is_leader, 5.0)
    second = standby.service()
    second.start()
    try:
        time.sleep(0.3)
        assert not standby.leadership().is_leader
        first.stop(grace_seconds=5)  # releases the lease: the standby takes over at its next retry
        wait_until(lambda: standby.leadership().is_leader, timeout=2)
        assert standby.leadership().current_epoch == 2
        task = standby.submit_task()("after-failover", "default", {"image": "b", "command": ["true"]})
        wait_until(lambda: shared_repo.get(task.id).status is TaskStatus.PENDING, 5.0)
    finally:
        second.stop(grace_seconds=5)


def test_a_tick_that_raises_does_not_stop_the_next_ticks() -> None:
    container = build_container(FAST, load_plugins=False)

    class Exploding(MemoryJobRunner):
        calls = 0

        def observe(self, refs):  # type: ignore[no-untyped-def]
            Exploding.calls += 1
            raise RuntimeError("adapter bug")

    container.runner.override(providers.Object(Exploding()))
    repo = container.repository()
    service = container.service()
    service.start()
    try:
        task = container.submit_task()("boom", "default", {"image": "b", "command": ["true"]})
        wait_until(lambda: repo.get(task.id).status is TaskStatus.PENDING, 5.0)
        wait_until(lambda: Exploding.calls >= 3, 5.0)
    finally:
        service.stop(grace_seconds=5)
    errors = container.metrics().tick_errors.labels("sync", "unexpected")._value.get()
    assert errors >= 3


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_lock_selector(backend: str) -> None:
    container = build_container({"lock": {"backend": backend}}, load_plugins=False)
    assert type(container.lock()).__name__ == ("MemoryLeaderLock" if backend == "memory" else "RedlockLeaderLock")
    container.shutdown_resources()


def test_a_submit_wakes_dispatch_in_process() -> None:
    container = build_container({"database": {"url": "memory://"}}, load_plugins=False)
    woken: list[str] = []
    container.wakeups().connect(woken.append)
    container.submit_task()("nudged", "default", {"image": "alpine"})
    assert woken == ["dispatch"]
