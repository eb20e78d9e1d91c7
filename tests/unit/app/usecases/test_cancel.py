"""RequestCancel and CancelTasks on the in-memory adapters: a cancelled task's Job is deleted, fenced."""

from __future__ import annotations

import pytest

from nightwatch.app.usecases.cancel import CancelTasks
from nightwatch.domain.errors import (
    InvalidTransition,
    LeadershipLost,
    RetryableError,
)
from nightwatch.domain.observation import JobObservation, JobPhase
from tests.unit.app.usecases.world import LosingFence, S, World


def test_cancel_a_normal_task_never_launches_it(world: World) -> None:
    task_id = world.insert("never")
    world.request_cancel(task_id)
    world.dispatch()
    assert world.status(task_id) is S.CANCELLED and world.runner.jobs == {}


def test_cancel_a_running_task_deletes_its_job(world: World) -> None:
    task_id = world.insert("long")
    world.dispatch()
    world.runner.set_observation("default", "long", JobObservation(JobPhase.ACTIVE))
    world.sync()
    world.request_cancel(task_id)
    # Sync leaves a task being cancelled alone, even if its Job looks finished.
    world.runner.set_observation("default", "long", JobObservation(JobPhase.SUCCEEDED))
    assert world.sync().changed == 0
    report = world.cancel()
    assert report.cancelled == 1
    assert world.status(task_id) is S.CANCELLED and world.runner.deleted == [("default", "long")]
    with pytest.raises(InvalidTransition):
        world.request_cancel(task_id)


def test_cancel_retries_when_the_delete_fails(world: World) -> None:
    task_id = world.insert("sticky")
    world.dispatch()
    world.request_cancel(task_id)
    world.runner.fail_next(RetryableError("timeout"))
    assert world.cancel().deferred == 1 and world.status(task_id) is S.PENDING
    assert world.cancel().cancelled == 1 and world.status(task_id) is S.CANCELLED


def test_a_leader_without_its_lease_deletes_no_job(world: World) -> None:
    task_id = world.insert("keep-me")
    world.dispatch()
    world.request_cancel(task_id)
    fence = LosingFence()
    fence.lose()
    cancel = CancelTasks(world.repo, world.runner, world.clock, fence)
    with pytest.raises(LeadershipLost):
        cancel()
    assert world.runner.deleted == [] and world.status(task_id) is S.PENDING
