"""Retries through dispatch and sync on the memory adapters (issue 18): attempts counted exactly,
one Job per attempt, nothing lost or doubled when a leader dies between a create and its write."""

from __future__ import annotations

import json

import pytest

from nightwatch.adapters.memory import FixedFence
from nightwatch.app.usecases.dispatch import DispatchTasks
from nightwatch.app.usecases.sync import RetrySettings, SyncTasks
from nightwatch.domain.errors import LeadershipLost
from nightwatch.domain.model import TaskId
from nightwatch.domain.names import job_name_for
from nightwatch.domain.observation import JobCondition, JobObservation, JobPhase
from nightwatch.domain.retries import RetrySpec
from nightwatch.domain.submission import SubmissionPolicy
from tests.unit.app.usecases.world import S, World

RETRY_3 = {"attempts": 3, "exitCodes": [2], "backoffSeconds": 1, "maxBackoffSeconds": 1}


def info(retry: dict[str, object] | None = None) -> str:
    return json.dumps({"image": "busybox", **({"retry": retry} if retry is not None else {})})


def exit_with(code: int) -> JobObservation:
    cond = JobCondition("Failed", reason="BackoffLimitExceeded", message="Job has reached the specified backoff limit")
    return JobObservation.from_job_status([cond], exit_code=code, diagnosis=f"container task exited with code {code}")


def fail_current_job(world: World, task_id: TaskId, observation: JobObservation) -> None:
    task = world.repo.get(task_id)
    assert task.job_name is not None
    world.runner.set_observation(task.namespace, task.job_name, observation)


def run_until_terminal(world: World, task_id: TaskId, observation: JobObservation, *, ticks: int = 20) -> None:
    for _ in range(ticks):
        world.dispatch()
        if world.status(task_id).is_terminal:
            return
        if world.status(task_id) is S.PENDING:
            fail_current_job(world, task_id, observation)
            world.sync()
        world.clock.advance(5)
    raise AssertionError("the task did not end")


def test_attempts_3_and_a_job_that_always_fails_makes_exactly_three_jobs(world: World) -> None:
    task_id = world.insert("flaky", info=info(RETRY_3))
    run_until_terminal(world, task_id, exit_with(2))
    task = world.repo.get(task_id)
    assert task.status is S.FAILED and task.attempt == 3 and "attempt 3 of 3" in task.message
    assert sorted(name for _, name in world.runner.jobs) == ["flaky", "flaky-r2", "flaky-r3"]
    assert world.runner.calls["launch"] == 3
    # Every attempt's Job is released once its outcome is stored (the retried ones too).
    assert sorted(name for _, name in world.runner.released) == ["flaky", "flaky-r2", "flaky-r3"]
    timeline = [(e.from_status, e.to_status, e.attempt) for e in world.repo.list_events(task_id)]
    assert timeline == [
        (None, "Normal", 1),
        ("Normal", "Pending", 1),
        ("Pending", "Normal", 2),
        ("Normal", "Pending", 2),
        ("Pending", "Normal", 3),
        ("Normal", "Pending", 3),
        ("Pending", "Failed", 3),
    ]


def test_an_unlisted_exit_code_makes_one_job(world: World) -> None:
    task_id = world.insert("once", info=info(RETRY_3))
    run_until_terminal(world, task_id, exit_with(1))
    assert world.repo.get(task_id).attempt == 1 and len(world.runner.jobs) == 1


def test_a_retry_waits_for_its_backoff_before_the_next_job(world: World) -> None:
    task_id = world.insert("patient", info=info({**RETRY_3, "backoffSeconds": 60, "maxBackoffSeconds": 60}))
    world.dispatch()
    fail_current_job(world, task_id, exit_with(2))
    world.sync()
    task = world.repo.get(task_id)
    assert task.status is S.NORMAL and task.next_attempt_at is not None
    assert 30 <= (task.next_attempt_at - world.clock.now()).total_seconds() <= 60
    world.dispatch()
    assert len(world.runner.jobs) == 1  # not yet
    world.clock.advance(61)
    world.dispatch()
    assert world.repo.get(task_id).job_name == "patient-r2" and len(world.runner.jobs) == 2


def test_infrastructure_failures_retry_by_default_and_not_when_the_task_says_zero() -> None:
    world = World(
        retry=RetrySettings(default=RetrySpec(infrastructure_attempts=2, backoff_seconds=1, max_backoff_seconds=1))
    )
    evicted = JobObservation(JobPhase.FAILED, "BackoffLimitExceeded", "x", disruption="EvictionByEvictionAPI: evicted")
    a = world.insert("a")
    b = world.insert("b", info=info({"infrastructureAttempts": 0}))
    run_until_terminal(world, a, evicted)
    run_until_terminal(world, b, evicted)
    assert world.repo.get(a).attempt == 3 and "infrastructure failure" in world.repo.get(a).message
    assert world.repo.get(b).attempt == 1
    assert sorted(name for _, name in world.runner.jobs) == ["a", "a-r2", "a-r3", "b"]


def test_a_row_with_an_invalid_policy_written_by_sql_fails_at_dispatch_with_the_submit_message(world: World) -> None:
    task_id = world.insert("typo", info=info({"attempts": 0}))
    world.dispatch()
    task = world.repo.get(task_id)
    assert task.status is S.FAILED and "retry.attempts" in task.message and not world.runner.jobs


def test_a_leader_lost_between_an_attempts_create_and_its_write_makes_no_second_job(world: World) -> None:
    task_id = world.insert("crashy", info=info(RETRY_3))
    world.dispatch()
    fail_current_job(world, task_id, exit_with(2))
    world.sync()
    world.clock.advance(5)
    # A leader at epoch 1 creates attempt 2's Job, but a successor took epoch 2 before the write.
    old = FixedFence(1)
    world.repo.advance_epoch()
    stale = DispatchTasks(world.repo, world.runner, world.clock, old, policy=SubmissionPolicy(frozenset({"default"})))
    with pytest.raises(LeadershipLost):
        stale()
    assert world.repo.get(task_id).status is S.NORMAL and ("default", "crashy-r2") in world.runner.jobs
    new = FixedFence(2)
    report = DispatchTasks(
        world.repo, world.runner, world.clock, new, policy=SubmissionPolicy(frozenset({"default"}))
    )()
    assert report.adopted == 1 and report.launched == 0
    task = world.repo.get(task_id)
    assert (task.status, task.attempt, task.job_name) == (S.PENDING, 2, "crashy-r2")
    assert sorted(name for _, name in world.runner.jobs) == ["crashy", "crashy-r2"]


def test_a_leader_lost_during_the_retry_write_neither_loses_nor_doubles_the_attempt(world: World) -> None:
    task_id = world.insert("steady", info=info(RETRY_3))
    world.dispatch()
    fail_current_job(world, task_id, exit_with(2))
    world.repo.advance_epoch()  # the successor has epoch 2; this replica still writes under 1
    with pytest.raises(LeadershipLost):
        SyncTasks(world.repo, world.runner, world.clock, FixedFence(1))()
    assert world.repo.get(task_id).attempt == 1 and world.repo.get(task_id).status is S.PENDING
    SyncTasks(world.repo, world.runner, world.clock, FixedFence(2))()
    # The successor sees the same failed Job and retries it once; a second tick changes nothing.
    SyncTasks(world.repo, world.runner, world.clock, FixedFence(2))()
    task = world.repo.get(task_id)
    assert (task.status, task.attempt) == (S.NORMAL, 2)
    assert [e.to_status for e in world.repo.list_events(task_id)].count("Normal") == 2  # creation + one retry
    assert job_name_for("steady", task.attempt) == "steady-r2"
