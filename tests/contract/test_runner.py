"""The JobRunner contract, run against every runner through a small harness per backend.

A harness knows how to make a launch request whose Job will end a given way and how to bring a
Job to that end (set its status on a fake, or wait for a real process). Later runners add an
entry to `RUNNER_BACKENDS`; the tests do not change.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Literal, Protocol

import pytest

from nightwatch.adapters.memory import MemoryJobRunner
from nightwatch.domain.errors import ForeignJob
from nightwatch.domain.jobspec import JobSpec, LaunchRequest
from nightwatch.domain.model import TaskId
from nightwatch.domain.observation import JobObservation, JobPhase
from nightwatch.domain.ports import JobRef, JobRunner
from tests.contract.kube_harness import kubernetes_harness, kubernetes_real_harness
from tests.support.local_harness import local_harness

Outcome = Literal["succeed", "fail", "run"]


class RunnerHarness(Protocol):
    runner: JobRunner

    def request(self, task_id: int, name: str, outcome: Outcome) -> LaunchRequest:
        """A launch request whose Job will succeed, fail, or keep running until deleted."""
        ...

    def settle(self, ref: JobRef, outcome: Outcome) -> None:
        """Bring the launched Job to `outcome` (set it on a fake; wait for a real one)."""
        ...

    def add_foreign_job(self, namespace: str, name: str) -> None:
        """Create a Job of that name that nightwatch did not create."""
        ...


class MemoryHarness:
    def __init__(self) -> None:
        self.memory = MemoryJobRunner()
        self.runner: JobRunner = self.memory

    def request(self, task_id: int, name: str, outcome: Outcome) -> LaunchRequest:
        spec = JobSpec(
            image="busybox",
            command=("sh", "-c"),
            args=({"succeed": "true", "fail": "false", "run": "sleep 60"}[outcome],),
        )
        return LaunchRequest(TaskId(task_id), name, "default", spec)

    def settle(self, ref: JobRef, outcome: Outcome) -> None:
        observation = {
            "succeed": JobObservation(JobPhase.SUCCEEDED, "Completed", "Reached expected number of succeeded pods"),
            "fail": JobObservation(
                JobPhase.FAILED, "BackoffLimitExceeded", "Job has reached the specified backoff limit"
            ),
            "run": JobObservation(JobPhase.ACTIVE, "", "1 pod(s) active, 1 ready"),
        }[outcome]
        self.memory.set_observation(ref.namespace, ref.job_name, observation)

    def add_foreign_job(self, namespace: str, name: str) -> None:
        self.memory.add_foreign_job(namespace, name)


@contextmanager
def memory_harness() -> Iterator[RunnerHarness]:
    yield MemoryHarness()


RUNNER_BACKENDS: dict[str, Callable[[], AbstractContextManager[RunnerHarness]]] = {
    "memory": memory_harness,
    "local": local_harness,
    "kubernetes": kubernetes_harness,
}
if os.environ.get("NIGHTWATCH_TEST_KUBECONFIG"):
    # A real cluster is optional (there is none on CI machines): the suite gains a backend when one
    # is configured, so the fake API server is never the only truth, and shows no skips otherwise.
    RUNNER_BACKENDS["kubernetes-real"] = kubernetes_real_harness


@pytest.fixture(params=sorted(RUNNER_BACKENDS))
def harness(request: pytest.FixtureRequest) -> Iterator[RunnerHarness]:
    with RUNNER_BACKENDS[request.param]() as h:
        yield h


def ref_of(request: LaunchRequest) -> JobRef:
    return JobRef(request.task_id, request.namespace, request.job_name)


def test_launch_then_observe_success_and_failure_in_one_call(harness: RunnerHarness) -> None:
    ok = harness.request(1, "contract-ok", "succeed")
    bad = harness.request(2, "contract-bad", "fail")
    for req in (ok, bad):
        assert harness.runner.launch(req).job_name == req.job_name
    harness.settle(ref_of(ok), "succeed")
    harness.settle(ref_of(bad), "fail")
    seen = harness.runner.observe([ref_of(ok), ref_of(bad)])
    assert seen[ok.task_id].phase is JobPhase.SUCCEEDED
    assert seen[bad.task_id].phase is JobPhase.FAILED
    assert seen[bad.task_id].summary  # a failure always says why


def test_running_job_is_active(harness: RunnerHarness) -> None:
    req = harness.request(3, "contract-run", "run")
    harness.runner.launch(req)
    harness.settle(ref_of(req), "run")
    assert harness.runner.observe([ref_of(req)])[req.task_id].phase is JobPhase.ACTIVE
    harness.runner.delete(ref_of(req))


def test_launching_twice_adopts_the_same_job(harness: RunnerHarness) -> None:
    req = harness.request(4, "contract-twice", "run")
    first = harness.runner.launch(req)
    second = harness.runner.launch(req)
    assert not first.adopted and second.adopted
    assert second.job_name == first.job_name
    harness.runner.delete(ref_of(req))


def test_a_foreign_job_of_the_same_name_is_a_foreign_job(harness: RunnerHarness) -> None:
    harness.add_foreign_job("default", "contract-foreign")
    req = harness.request(5, "contract-foreign", "succeed")
    with pytest.raises(ForeignJob, match="not created by nightwatch") as caught:
        harness.runner.launch(req)
    assert type(caught.value) is ForeignJob


def test_unknown_job_is_missing_and_every_ref_gets_an_answer(harness: RunnerHarness) -> None:
    refs = [JobRef(TaskId(100 + i), "default", f"contract-never-{i}") for i in range(3)]
    seen = harness.runner.observe(refs)
    assert set(seen) == {r.task_id for r in refs}
    assert all(o.phase is JobPhase.MISSING for o in seen.values())


def test_delete_removes_the_job_and_deleting_again_is_fine(harness: RunnerHarness) -> None:
    req = harness.request(6, "contract-delete", "run")
    harness.runner.launch(req)
    harness.runner.delete(ref_of(req))
    harness.runner.delete(ref_of(req))
    assert harness.runner.observe([ref_of(req)])[req.task_id].phase is JobPhase.MISSING


def test_observe_of_nothing_is_empty(harness: RunnerHarness) -> None:
    assert dict(harness.runner.observe([])) == {}


def test_release_hands_a_finished_job_back_and_is_harmless_to_repeat(harness: RunnerHarness) -> None:
    req = harness.request(7, "contract-release", "succeed")
    ref = ref_of(req)
    harness.runner.launch(req)
    harness.settle(ref, "succeed")
    # A runner that holds its Jobs (the cluster could collect them first) lists this one until released;
    # one that holds nothing (local: nobody else deletes its Jobs) lists none.
    holds = harness.runner.held("default", unfinished=True) != []
    if holds:
        assert harness.runner.held("default") == [ref]  # finished: the outcome is waiting to be stored
    assert harness.runner.observe([ref])[req.task_id].phase is JobPhase.SUCCEEDED
    harness.runner.release([JobRef(TaskId(999), "default", req.job_name)])  # another task's id: not ours
    assert (ref in harness.runner.held("default")) is holds
    harness.runner.release([ref])
    harness.runner.release([ref, JobRef(TaskId(998), "default", "contract-never-launched")])
    assert ref not in harness.runner.held("default", unfinished=True)


def test_a_running_job_is_held_only_with_unfinished(harness: RunnerHarness) -> None:
    req = harness.request(8, "contract-held-running", "run")
    harness.runner.launch(req)
    harness.settle(ref_of(req), "run")
    assert ref_of(req) not in harness.runner.held("default")
    everything = harness.runner.held("default", unfinished=True)
    assert everything in ([], [ref_of(req)])
    harness.runner.delete(ref_of(req))
    # Deleting also lets go: nothing of it is left held (on a cluster it would never go otherwise).
    assert harness.runner.held("default", unfinished=True) == []
