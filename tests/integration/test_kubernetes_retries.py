"""Retries against the fake API server (issue 18): the whole leader loop on the Kubernetes runner.

A failed attempt's pods carry the evidence (a `DisruptionTarget` condition, an OOMKilled or non-zero
exit code); sync classifies it, and either fails the task or moves it to its next attempt, a new Job
named `<task>-r<k>` carrying the attempt label; the failed attempt's Job is released.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from nightwatch.adapters.kubernetes import KubernetesJobRunner, KubernetesSettings
from nightwatch.adapters.memory import FakeClock, FixedFence, MemoryTaskRepository
from nightwatch.app.usecases.sync import RetrySettings
from nightwatch.app.watchers import WatcherContext, default_registry
from nightwatch.domain.errors import LeadershipLost
from nightwatch.domain.model import TaskId, TaskStatus
from nightwatch.domain.ports import NewTask
from nightwatch.domain.retries import RetrySpec
from nightwatch.domain.submission import SubmissionPolicy
from tests.fakekube.controller import disrupted_pod, failed_pod, job_status
from tests.fakekube.fixtures import api_client_for
from tests.fakekube.server import FakeKubeServer
from tests.support.waiting import wait_until

S = TaskStatus
QUICK = RetrySettings(default=RetrySpec(infrastructure_attempts=3, backoff_seconds=1, max_backoff_seconds=1))


class Leader:
    def __init__(self, fake: FakeKubeServer, repo: MemoryTaskRepository | None = None) -> None:
        self.fake = fake
        self.repo = repo or MemoryTaskRepository()
        self.clock = FakeClock()
        self.runner = KubernetesJobRunner(api_client_for(fake.url), KubernetesSettings(qps=0), sleep=lambda _: None)
        context = WatcherContext(
            self.repo,
            self.runner,
            self.clock,
            FixedFence(self.repo.advance_epoch()),
            policy=SubmissionPolicy(frozenset({"default"})),
            retry=QUICK,
        )
        self.watchers: dict[str, Callable[[], Any]] = {
            w.name: w.run for w in default_registry(load_plugins=False).build(context, {})
        }

    def insert(self, name: str, **info: Any) -> TaskId:
        body = json.dumps({"image": "alpine", **info})
        return self.repo.add(NewTask(name, "default", body, 1), self.clock.now()).id

    def tick(self, name: str) -> Any:
        return self.watchers[name]()

    def job_of(self, task_id: TaskId) -> dict[str, Any]:
        task = self.repo.get(task_id)
        assert task.job_name is not None
        return self.fake.job("default", task.job_name)

    def fail_attempt(self, task_id: TaskId, pod: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        """The current attempt's Job fails (BackoffLimitExceeded) and leaves `pod` behind."""
        job = self.job_of(task_id)
        self.fake.store.set_job_status("default", job["metadata"]["name"], job_status("failed"))
        self.fake.store.add_pod("default", pod(job))

    def succeed_attempt(self, task_id: TaskId) -> None:
        self.fake.store.set_job_status("default", self.job_of(task_id)["metadata"]["name"], job_status("succeeded"))

    def next_attempt(self) -> None:
        self.clock.advance(5)  # past the 1 s backoff
        self.tick("dispatch")


@pytest.fixture
def fake() -> Iterator[FakeKubeServer]:
    server = FakeKubeServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def leader(fake: FakeKubeServer) -> Iterator[Leader]:
    one = Leader(fake)
    try:
        yield one
    finally:
        one.runner.close()


def jobs(fake: FakeKubeServer) -> list[str]:
    return sorted(name for _, name in fake.store.jobs)


def evicted(job: dict[str, Any]) -> dict[str, Any]:
    return disrupted_pod(job, "EvictionByEvictionAPI", message="Eviction API: evicting")


def test_an_eviction_is_retried_to_success(leader: Leader) -> None:
    task_id = leader.insert("evicted")
    leader.tick("dispatch")
    leader.fail_attempt(task_id, evicted)
    leader.tick("sync")
    task = leader.repo.get(task_id)
    assert (task.status, task.attempt) == (S.NORMAL, 2)
    assert "[infrastructure failure" in task.message and "EvictionByEvictionAPI" in task.message
    leader.next_attempt()
    job = leader.job_of(task_id)
    assert job["metadata"]["name"] == "evicted-r2" and job["metadata"]["labels"]["nightwatch.io/attempt"] == "2"
    assert job["spec"]["template"]["metadata"]["labels"]["nightwatch.io/attempt"] == "2"
    leader.succeed_attempt(task_id)
    leader.tick("sync")
    assert leader.repo.get(task_id).status is S.SUCCEEDED
    # Both attempts' Jobs were released (no finalizer left), so the cluster may collect them: in the
    # background, once the tick has caught up.
    def released() -> bool:
        return all(not leader.fake.job("default", n)["metadata"].get("finalizers") for n in ("evicted", "evicted-r2"))

    wait_until(released, 5, what="both attempts' Jobs released")
    steps = [(e.to_status, e.attempt, e.failure_class) for e in leader.repo.list_events(task_id)]
    assert ("Normal", 2, "infrastructure") in steps and steps[-1] == ("Succeeded", 2, "")


@pytest.mark.parametrize("reason", ["PreemptionByScheduler", "DeletionByTaintManager", "TerminationByKubelet"])
def test_every_disruption_is_infrastructure(leader: Leader, reason: str) -> None:
    task_id = leader.insert("disrupted")
    leader.tick("dispatch")
    leader.fail_attempt(task_id, lambda job: disrupted_pod(job, reason))
    leader.tick("sync")
    assert leader.repo.get(task_id).attempt == 2 and reason in leader.repo.get(task_id).message


def test_a_lost_node_is_retried(leader: Leader) -> None:
    task_id = leader.insert("lost")
    leader.tick("dispatch")
    leader.fail_attempt(task_id, lambda job: disrupted_pod(job, "", node_lost=True))
    leader.tick("sync")
    assert leader.repo.get(task_id).status is S.NORMAL and "NodeLost" in leader.repo.get(task_id).message


def test_exit_code_2_is_retried_when_listed_and_not_when_unlisted(leader: Leader) -> None:
    listed = leader.insert("listed", retry={"attempts": 2, "exitCodes": [2]})
    unlisted = leader.insert("unlisted", retry={"attempts": 2, "exitCodes": [3]})
    leader.tick("dispatch")
    for task_id in (listed, unlisted):
        leader.fail_attempt(task_id, lambda job: failed_pod(job, exit_code=2))
    leader.tick("sync")
    assert (leader.repo.get(listed).status, leader.repo.get(listed).attempt) == (S.NORMAL, 2)
    failed = leader.repo.get(unlisted)
    assert failed.status is S.FAILED and "exited with code 2" in failed.message
    assert "[exit_code failure" in failed.message and "attempt 1 of 1" in failed.message
    leader.next_attempt()
    leader.fail_attempt(listed, lambda job: failed_pod(job, exit_code=2))
    leader.tick("sync")
    last = leader.repo.get(listed)
    assert last.status is S.FAILED and "attempt 2 of 2" in last.message
    assert jobs(leader.fake) == ["listed", "listed-r2", "unlisted"]


def test_oom_is_retried_only_with_on_oom(leader: Leader) -> None:
    with_oom = leader.insert("with-oom", retry={"attempts": 2, "onOOM": True})
    without = leader.insert("without-oom", retry={"attempts": 2})
    leader.tick("dispatch")
    for task_id in (with_oom, without):
        leader.fail_attempt(task_id, lambda job: failed_pod(job, exit_code=137, reason="OOMKilled"))
    leader.tick("sync")
    assert leader.repo.get(with_oom).status is S.NORMAL
    failed = leader.repo.get(without)
    assert failed.status is S.FAILED and "[oom failure" in failed.message and "OOMKilled" in failed.message


def test_a_new_leader_after_a_create_whose_write_was_lost_adopts_the_attempts_job(fake: FakeKubeServer) -> None:
    repo = MemoryTaskRepository()
    first = Leader(fake, repo)
    task_id = first.insert("failover", retry={"attempts": 3, "exitCodes": [2], "backoffSeconds": 1})
    first.tick("dispatch")
    first.fail_attempt(task_id, lambda job: failed_pod(job, exit_code=2))
    first.tick("sync")
    first.clock.advance(5)
    second = Leader(fake, repo)  # takes the next epoch: the first leader's writes are fenced off now
    second.clock.advance(5)
    with pytest.raises(LeadershipLost):
        first.tick("dispatch")  # creates attempt 2's Job, then cannot write Pending
    assert repo.get(task_id).status is S.NORMAL and "failover-r2" in jobs(fake)
    report = second.tick("dispatch")
    assert (report.adopted, report.launched) == (1, 0)
    assert (repo.get(task_id).status, repo.get(task_id).job_name) == (S.PENDING, "failover-r2")
    assert jobs(fake) == ["failover", "failover-r2"] and fake.counters["create"] == 3  # one a 409
    first.runner.close()
    second.runner.close()


def test_a_job_of_the_attempts_name_but_another_attempt_is_not_adopted(leader: Leader) -> None:
    task_id = leader.insert("twin", retry={"attempts": 2, "exitCodes": [2], "backoffSeconds": 1})
    leader.tick("dispatch")
    leader.fail_attempt(task_id, lambda job: failed_pod(job, exit_code=2))
    leader.tick("sync")
    # A Job named like attempt 2 with this task's id, made for attempt 1 (by hand, or a bug).
    body = {
        "metadata": {
            "name": "twin-r2",
            "labels": {"app.kubernetes.io/managed-by": "nightwatch", "nightwatch.io/task-id": str(task_id)},
        },
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "task", "image": "a"}]}}},
    }
    leader.fake.store.create_job("default", body)
    leader.next_attempt()
    task = leader.repo.get(task_id)
    assert task.status is S.FAILED and "for attempt 1 of this task, not attempt 2" in task.message
