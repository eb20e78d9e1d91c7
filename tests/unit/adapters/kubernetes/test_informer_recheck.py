"""The informer's recheck of Jobs waiting for a pod: each on its own schedule, from when it began to wait."""

from __future__ import annotations

from typing import Any

from nightwatch.adapters.kubernetes.informer import ChangeQueue, NamespaceInformer
from nightwatch.domain.model import TaskId


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def waiting_job(task_id: int) -> dict[str, Any]:
    """A Job as created: no pod yet, so observed Pending."""
    labels = {"app.kubernetes.io/managed-by": "nightwatch", "nightwatch.io/task-id": str(task_id)}
    return {"metadata": {"name": f"t{task_id}", "labels": labels}, "spec": {}, "status": {}}


def informer(clock: Clock) -> NamespaceInformer:
    # Never started: no API is called; the cache is fed by assume() and _apply() as the thread would.
    return NamespaceInformer(
        None,  # type: ignore[arg-type]
        "default",
        ChangeQueue(),
        watch_timeout=60,
        connect_timeout=1.0,
        recheck_seconds=5.0,
        monotonic=clock,
    )


def test_a_waiting_job_is_rechecked_recheck_seconds_after_it_began_to_wait_each_on_its_own_schedule() -> None:
    clock = Clock()
    cache = informer(clock)
    cache.assume(waiting_job(1))
    assert cache.due_task_ids() == set()  # just created: nothing to diagnose yet
    clock.now += 3
    cache.assume(waiting_job(2))
    clock.now += 2.5
    assert cache.due_task_ids() == {TaskId(1)}  # task 2 has waited 2.5 s only
    assert cache.due_task_ids() == set()  # rescheduled, not due twice
    clock.now += 3
    assert cache.due_task_ids() == {TaskId(2)}
    clock.now += 2.5
    assert cache.due_task_ids() == set()  # task 1's next recheck is 10 s after its first
    clock.now += 5
    assert cache.due_task_ids() == {TaskId(1)}


def test_a_job_that_stops_waiting_is_not_rechecked_and_a_change_while_waiting_keeps_its_schedule() -> None:
    clock = Clock()
    cache = informer(clock)
    cache.assume(waiting_job(1))
    cache.assume(waiting_job(2))
    clock.now += 4
    running = waiting_job(1) | {"status": {"active": 1, "ready": 1, "startTime": "2026-12-02T00:00:00Z"}}
    cache._apply({"type": "MODIFIED", "object": {**running, "metadata": {**running["metadata"], "uid": "u1"}}})
    job2 = waiting_job(2)
    cache._apply({"type": "MODIFIED", "object": {**job2, "metadata": {**job2["metadata"], "uid": "u2"}}})
    clock.now += 1
    assert cache.due_task_ids() == {TaskId(2)}  # its uid arriving did not postpone its recheck
    cache._apply({"type": "DELETED", "object": {**job2, "metadata": {**job2["metadata"], "uid": "u2"}}})
    clock.now += 10
    assert cache.due_task_ids() == set()


def due_times(cache: NamespaceInformer, clock: Clock, until: float) -> list[float]:
    """When task 1 comes due, stepping the clock a second at a time up to `until` seconds."""
    start, times = clock.now, []
    while clock.now - start < until:
        clock.now += 1
        if cache.due_task_ids():
            times.append(clock.now - start)
    return times


def test_a_long_wait_is_rechecked_less_and_less_often_up_to_a_minute() -> None:
    clock = Clock()
    cache = informer(clock)
    cache.assume(waiting_job(1))
    # 5 s, then 10, 20, 40, then every 60 s: a backlog waiting for nodes costs a read a minute per Job.
    assert due_times(cache, clock, 260) == [5, 15, 35, 75, 135, 195, 255]


def test_a_start_timeout_bounds_the_interval_so_it_fires_at_most_a_tenth_late() -> None:
    clock = Clock()
    cache = informer(clock)
    job = waiting_job(1)
    job["metadata"]["annotations"] = {"nightwatch.io/start-timeout-seconds": "120"}
    cache.assume(job)
    assert due_times(cache, clock, 60) == [5, 15, 27, 39, 51]  # 5, 10, then at most 12 s apart
