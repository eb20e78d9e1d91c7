"""JobRunner contract harnesses for Kubernetes: the fake API server, and a real cluster if configured.

`kubernetes` runs against `tests.fakekube` (settle() sets the Job's status through the server's
hook). `kubernetes-real` runs against the cluster of NIGHTWATCH_TEST_KUBECONFIG (a backend only when it is
set) with tiny busybox Jobs, so the fake is never the only truth; settle() waits for the real Job.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal

import pytest
from kubernetes import client

from nightwatch.adapters.kubernetes import KubernetesJobRunner, KubernetesSettings, load_api_client
from nightwatch.domain.jobspec import JobSpec, LaunchRequest
from nightwatch.domain.model import TaskId
from nightwatch.domain.observation import JobPhase
from nightwatch.domain.ports import JobRef, JobRunner
from tests.fakekube.fixtures import api_client_for
from tests.fakekube.server import FakeKubeServer

if TYPE_CHECKING:
    from tests.contract.test_runner import RunnerHarness

Outcome = Literal["succeed", "fail", "run"]
_SCRIPTS = {"succeed": "true", "fail": "false", "run": "sleep 60"}


def _spec(outcome: Outcome) -> JobSpec:
    return JobSpec(image="busybox", command=("sh", "-c"), args=(_SCRIPTS[outcome],), backoff_limit=0)


def _foreign_job(name: str) -> dict[str, object]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 300,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "sleep 30"]}],
                }
            },
        },
    }


class FakeKubeHarness:
    def __init__(self, server: FakeKubeServer, runner: KubernetesJobRunner) -> None:
        self.server = server
        self.runner: JobRunner = runner

    def request(self, task_id: int, name: str, outcome: Outcome) -> LaunchRequest:
        return LaunchRequest(TaskId(task_id), name, "default", _spec(outcome))

    def settle(self, ref: JobRef, outcome: Outcome) -> None:
        state = {"succeed": "succeeded", "fail": "failed", "run": "active"}[outcome]
        self.server.set_job_state(ref.namespace, ref.job_name, state)

    def add_foreign_job(self, namespace: str, name: str) -> None:
        self.server.store.create_job(namespace, _foreign_job(name), created_by="someone-else")


@contextmanager
def kubernetes_harness() -> Iterator[RunnerHarness]:
    server = FakeKubeServer().start()
    runner = KubernetesJobRunner(api_client_for(server.url), KubernetesSettings(qps=0, request_timeout_seconds=5.0))
    try:
        yield FakeKubeHarness(server, runner)
    finally:
        runner.close()
        server.stop()


class RealClusterHarness:
    """Names get a per-run suffix so leftovers of an earlier run never collide."""

    def __init__(self, runner: KubernetesJobRunner, api: client.ApiClient, namespace: str) -> None:
        self.runner: JobRunner = runner
        self._kube = runner
        self._batch = client.BatchV1Api(api)
        self._namespace = namespace
        self._suffix = uuid.uuid4().hex[:6]
        self.created: list[tuple[str, str]] = []

    def _name(self, name: str) -> str:
        return f"{name}-{self._suffix}"

    def request(self, task_id: int, name: str, outcome: Outcome) -> LaunchRequest:
        self.created.append((self._namespace, self._name(name)))
        return LaunchRequest(TaskId(task_id), self._name(name), self._namespace, _spec(outcome))

    def settle(self, ref: JobRef, outcome: Outcome, timeout: float = 180.0) -> None:
        wanted = {"succeed": JobPhase.SUCCEEDED, "fail": JobPhase.FAILED, "run": JobPhase.ACTIVE}[outcome]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._kube.observe([ref])[ref.task_id].phase is wanted:
                return
            time.sleep(1.0)
        raise AssertionError(f"Job {ref.namespace}/{ref.job_name} did not reach {wanted} in {timeout}s")

    def add_foreign_job(self, namespace: str, name: str) -> None:
        self.created.append((namespace, self._name(name)))
        self._batch.create_namespaced_job(namespace, _foreign_job(self._name(name)))

    def cleanup(self) -> None:
        for namespace, name in self.created:
            self._kube.delete(JobRef(TaskId(0), namespace, name))


@contextmanager
def kubernetes_real_harness() -> Iterator[RunnerHarness]:
    kubeconfig = os.environ.get("NIGHTWATCH_TEST_KUBECONFIG")
    if not kubeconfig:
        pytest.skip("NIGHTWATCH_TEST_KUBECONFIG is not set: no real cluster to test against")
    api = load_api_client(
        kubeconfig, os.environ.get("NIGHTWATCH_TEST_CONTEXT"), pool_maxsize=4, user_agent="nightwatch-contract-tests"
    )
    runner = KubernetesJobRunner(api, KubernetesSettings(request_timeout_seconds=30.0))
    harness = RealClusterHarness(runner, api, os.environ.get("NIGHTWATCH_TEST_NAMESPACE", "default"))
    try:
        yield harness
    finally:
        harness.cleanup()
        runner.close()
