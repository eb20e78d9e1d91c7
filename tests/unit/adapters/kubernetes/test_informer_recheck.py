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


def test_a_waiting_job_is_rechecked_recheck_seconds_after_it_began_to_wait_and_every_interval_after() -> None:
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
