"""SyncTasks on the in-memory adapters: Job observations become status changes, written in batches."""

from __future__ import annotations

import pytest

from nightwatch.app.usecases.sync import RetrySettings
from nightwatch.domain.errors import (
    RetryableError,
)
from nightwatch.domain.observation import JobObservation, JobPhase
from nightwatch.domain.retries import RetrySpec
from tests.unit.app.usecases.world import SAMPLE_1, SAMPLE_2, S, World


def test_the_original_sample_rows_run_to_succeeded_and_failed(world: World) -> None:
    one = world.insert("demo-task-1", "default", SAMPLE_1)
    two = world.insert("demo-task-2", "demo", SAMPLE_2)

    report = world.dispatch()
    assert report.launched == 2
    assert world.status(one) is S.PENDING and world.status(two) is S.PENDING
    job = world.runner.jobs[("default", "demo-task-1")]
    assert job.spec is not None and job.spec.image == "alpine" and job.spec.args == ("60",)

    world.runner.set_observation("default", "demo-task-1", JobObservation(JobPhase.ACTIVE))
    world.runner.set_observation("demo", "demo-task-2", JobObservation(JobPhase.ACTIVE))
    assert world.sync().changed == 2
    assert world.status(one) is S.RUNNING and world.status(two) is S.RUNNING

    world.runner.set_observation("default", "demo-task-1", JobObservation(JobPhase.SUCCEEDED, "Completed", "done"))
    world.runner.set_observation(
        "demo", "demo-task-2", JobObservation(JobPhase.FAILED, "DeadlineExceeded", "Job was active too long")
    )
    assert world.sync().changed == 2
    assert world.status(one) is S.SUCCEEDED
    failed = world.repo.get(two)
    assert failed.status is S.FAILED and failed.message.startswith(
        "DeadlineExceeded: Job was active too long [deadline failure; attempt 1 of 1]"
    )
    assert failed.finished_at is not None and failed.job_name == "demo-task-2"

    # Terminal tasks are never scanned again: nothing to observe, nothing written.
    batches = world.repo.write_batches
    assert world.sync().observed == 0 and world.dispatch().launched == 0
    assert world.repo.write_batches == batches


def test_sync_observes_everything_in_one_runner_call_and_writes_only_changes() -> None:
    world = World(batch_size=100)
    for i in range(250):
        world.insert(f"s-{i}", namespace="default" if i % 2 else "demo")
    world.dispatch()
    world.runner.calls.clear()
    world.runner.set_observation("default", "s-1", JobObservation(JobPhase.ACTIVE))
    before = world.repo.write_batches
    report = world.sync()
    assert world.runner.calls["observe"] == 1 and report.observed == 250
    assert report.changed == 1 and world.repo.write_batches == before + 1


def test_a_missing_job_fails_the_in_flight_task(world: World) -> None:
    task_id = world.insert("vanished")
    world.dispatch()
    world.runner.jobs.clear()
    world.sync()
    task = world.repo.get(task_id)
    # An infrastructure failure (issue 18): retried by the default policy, then failed when spent.
    assert task.status is S.NORMAL and task.attempt == 2 and "outcome unknown" in task.message
    assert "[infrastructure failure" in task.message


def test_a_missing_job_fails_the_task_when_infrastructure_attempts_are_spent() -> None:
    world = World(retry=RetrySettings(default=RetrySpec(infrastructure_attempts=0)))
    task_id = world.insert("vanished")
    world.dispatch()
    world.runner.jobs.clear()
    world.sync()
    task = world.repo.get(task_id)
    assert task.status is S.FAILED and "outcome unknown" in task.message and "attempt 1 of 1" in task.message


def test_a_cluster_outage_changes_no_task(world: World) -> None:
    task_id = world.insert("steady")
    world.dispatch()
    world.runner.fail_next(RetryableError("connection refused"))
    with pytest.raises(RetryableError):
        world.sync()
    assert world.status(task_id) is S.PENDING
