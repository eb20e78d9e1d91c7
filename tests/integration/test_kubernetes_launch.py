"""KubernetesJobRunner.launch and delete over the wire, against the fake API server.

Covers the exact Job body, adoption after a crash, the refusal paths (ForeignJob, JobInvalid for a 422,
JobForbidden for a 403, JobRefused for any other permanent answer), and retries (429 with Retry-After, 5xx, timeouts) ending in RetryableError.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from nightwatch.adapters.kubernetes import (
    KubernetesConfigError,
    KubernetesJobRunner,
    KubernetesSettings,
    load_api_client,
)
from nightwatch.adapters.memory import FakeClock, FixedFence, MemoryTaskRepository
from nightwatch.app.usecases.dispatch import DispatchTasks
from nightwatch.domain.errors import (
    AdmissionDeferred,
    ForeignJob,
    JobForbidden,
    JobInvalid,
    JobRefused,
    RetryableError,
)
from nightwatch.domain.jobspec import JobSpec, LaunchRequest
from nightwatch.domain.model import TaskId, TaskStatus
from nightwatch.domain.ports import JobRef, NewTask
from nightwatch.domain.submission import SubmissionPolicy
from tests.fakekube.fixtures import running_fake_kube, write_kubeconfig
from tests.fakekube.server import FakeKubeServer

SAMPLE_INFO = '{"image":"alpine","command":["sleep"],"args":["60"]}'


@pytest.fixture
def kube() -> Iterator[tuple[FakeKubeServer, client.ApiClient]]:
    with running_fake_kube(user_agent="nightwatch/replica-a") as pair:
        yield pair


class Sleeps(list[float]):
    """Records the adapter's sleeps instead of sleeping (tests stay fast and see the delays)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_runner(api: client.ApiClient, **kwargs: Any) -> KubernetesJobRunner:
    """A runner on `api`: keywords naming a `KubernetesSettings` field go there, the rest to the runner."""
    settings = {"qps": 0, "request_timeout_seconds": 5.0}
    settings |= {key: kwargs.pop(key) for key in list(kwargs) if key in KubernetesSettings.model_fields}
    return KubernetesJobRunner(api, KubernetesSettings(**settings), **kwargs)


def sample(task_id: int = 1, name: str = "demo-task-1", namespace: str = "default") -> LaunchRequest:
    return LaunchRequest(TaskId(task_id), name, namespace, JobSpec.from_info(SAMPLE_INFO))


def test_the_sample_task_sends_exactly_this_job(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    server, api = kube
    result = make_runner(api).launch(sample())
    assert result.job_name == "demo-task-1" and not result.adopted
    labels = {"app.kubernetes.io/managed-by": "nightwatch", "nightwatch.io/task-id": "1"}
    assert server.created_bodies() == [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": "demo-task-1",
                "namespace": "default",
                "labels": labels,
                "finalizers": ["nightwatch.io/outcome"],  # kept until the outcome is stored
            },
            "spec": {
                "backoffLimit": 1,
                "ttlSecondsAfterFinished": 3600,
                "template": {
                    "metadata": {"labels": {**labels, "app": "task-job"}},
                    "spec": {
                        "restartPolicy": "Never",
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        "containers": [{"name": "task", "image": "alpine", "command": ["sleep"], "args": ["60"]}],
                    },
                },
            },
        }
    ]
    assert server.created_by("default", "demo-task-1") == "nightwatch/replica-a"


def test_dangerous_info_never_reaches_the_job(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    server, api = kube
    info = {
        "image": "alpine",
        "securityContext": {"privileged": True, "runAsUser": 0},
        "privileged": True,
        "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
        "volumeMounts": [{"name": "root", "mountPath": "/host"}],
        "hostNetwork": True,
        "hostPID": True,
        "serviceAccountName": "cluster-admin",
        "nodeSelector": {"kubernetes.io/hostname": "control-plane"},
    }
    make_runner(api).launch(LaunchRequest(TaskId(9), "sneaky", "default", JobSpec.from_info(json.dumps(info))))
    sent = json.dumps(server.created_bodies()[0])
    for forbidden in (
        "securityContext",
        "privileged",
        "hostPath",
        "volume",
        "hostNetwork",
        "hostPID",
        "serviceAccount",
        "nodeSelector",
    ):
        assert forbidden not in sent


def test_launching_again_after_a_crash_adopts_the_job(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    server, api = kube
    runner = make_runner(api)
    assert not runner.launch(sample()).adopted
    # The process died before writing Pending; the next leader launches the same task again.
    again = runner.launch(sample())
    assert again.adopted and again.job_name == "demo-task-1"
    assert len(server.store.jobs) == 1
    assert server.counters["create"] == 2 and server.counters["get"] == 1


def test_a_foreign_job_with_the_same_name_is_a_foreign_job(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    server, api = kube
    server.store.create_job(
        "default",
        {
            "metadata": {"name": "demo-task-1"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "x", "image": "nginx"}]}}},
        },
    )
    with pytest.raises(ForeignJob) as caught:
        make_runner(api).launch(sample())
    assert type(caught.value) is ForeignJob
    assert str(caught.value) == ("a Job named demo-task-1 already exists in default and was not created by nightwatch")


def test_a_job_of_another_task_with_the_same_name_is_a_foreign_job(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    _, api = kube
    runner = make_runner(api)
    runner.launch(sample(task_id=1))
    with pytest.raises(ForeignJob, match="not created by nightwatch") as caught:
        runner.launch(sample(task_id=2))
    assert type(caught.value) is ForeignJob


def test_invalid_job_is_job_invalid_with_the_servers_message_and_causes(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    _, api = kube
    with pytest.raises(JobInvalid, match=r'Job.batch "Not_A_Name" is invalid: metadata.name') as caught:
        make_runner(api).launch(sample(name="Not_A_Name"))
    assert type(caught.value) is JobInvalid
    # As a real server does, each cause names its field apart from the message.
    [cause] = caught.value.problems
    assert cause.loc == ("metadata.name",) and cause.message.startswith('Invalid value: "Not_A_Name"')


def test_forbidden_is_job_forbidden_and_logged_loudly(
    kube: tuple[FakeKubeServer, client.ApiClient], caplog: pytest.LogCaptureFixture
) -> None:
    server, api = kube
    server.forbidden_namespaces.add("team-a")
    with caplog.at_level(logging.ERROR), pytest.raises(JobForbidden, match="forbidden in namespace team-a") as caught:
        make_runner(api).launch(sample(namespace="team-a"))
    assert type(caught.value) is JobForbidden
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and "team-a" in errors[0].getMessage() and "RBAC" in errors[0].getMessage()


def test_a_403_while_reading_the_job_to_adopt_is_job_forbidden(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    server, api = kube
    runner = make_runner(api)
    runner.launch(sample())
    server.inject(403, verb="get")
    with pytest.raises(JobForbidden, match="forbidden in namespace default") as caught:
        runner.launch(sample())
    assert type(caught.value) is JobForbidden


def test_any_other_permanent_answer_is_job_refused_itself(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    server, api = kube
    server.inject(400, verb="create")
    with pytest.raises(JobRefused, match=r"^create Job default/demo-task-1: injected fault: HTTP 400$") as caught:
        make_runner(api).launch(sample())
    assert type(caught.value) is JobRefused


def test_429_waits_for_retry_after_then_succeeds(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    server, api = kube
    server.inject(429, count=1, verb="create", retry_after=3)
    sleeps = Sleeps()
    assert not make_runner(api, sleep=sleeps).launch(sample()).adopted
    assert sleeps == [3.0]
    assert server.counters["create"] == 2 and ("default", "demo-task-1") in server.store.jobs


def test_500_three_times_then_success(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    server, api = kube
    server.inject(500, count=3, verb="create")
    sleeps = Sleeps()
    make_runner(api, sleep=sleeps, max_attempts=4, backoff_base=0.2, backoff_cap=0.5).launch(sample())
    assert server.counters["create"] == 4
    assert len(sleeps) == 3
    assert 0.1 <= sleeps[0] < 0.2 and all(s < 0.5 for s in sleeps)  # exponential, jittered, capped


def test_5xx_until_attempts_run_out_is_retryable(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    server, api = kube
    server.inject(503, count=10, verb="create")
    with pytest.raises(RetryableError, match="failed after 4 attempt"):
        make_runner(api, sleep=Sleeps(), max_attempts=4).launch(sample())
    assert server.counters["create"] == 4 and not server.store.jobs


def test_a_server_slower_than_the_timeout_is_retried_then_retryable(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    server.inject("delay", count=3, verb="create", delay_seconds=0.6)
    runner = make_runner(api, sleep=Sleeps(), max_attempts=3, request_timeout_seconds=0.15)
    started = time.monotonic()
    with pytest.raises(RetryableError, match="ReadTimeoutError"):
        runner.launch(sample())
    assert time.monotonic() - started < 2.0
    assert server.counters["create"] == 3
    # The slow server did create the Job in the end: the next tick adopts it instead of failing.
    deadline = time.monotonic() + 5
    while ("default", "demo-task-1") not in server.store.jobs and time.monotonic() < deadline:
        time.sleep(0.05)
    assert make_runner(api).launch(sample()).adopted


def test_connection_refused_is_retryable() -> None:
    api = client.ApiClient(client.Configuration(host="http://127.0.0.1:9"))
    api.configuration.retries = False
    with pytest.raises(RetryableError, match="failed after 2 attempt"):
        make_runner(api, sleep=Sleeps(), max_attempts=2).launch(sample())


def test_concurrent_launches_from_a_thread_pool(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    server, api = kube
    runner = make_runner(api, qps=0)
    requests = [sample(task_id=i, name=f"task-{i}") for i in range(1, 201)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(runner.launch, requests))
    assert [r.job_name for r in results] == [r.job_name for r in requests]
    assert len(server.store.jobs) == 200 and server.counters["create"] == 200


def test_launches_are_rate_limited(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    _, api = kube
    runner = make_runner(api, qps=100, burst=10)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(runner.launch, [sample(task_id=i, name=f"task-{i}") for i in range(1, 61)]))
    # 10 from the burst, then 50 at 100/s: at least ~0.5 s however many threads ask.
    assert time.monotonic() - started >= 0.45


def test_delete_removes_job_and_pods_and_a_missing_job_is_fine(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    runner = make_runner(api)
    runner.launch(sample())
    server.add_pod("default", {"metadata": {"name": "demo-task-1-abc", "labels": {"nightwatch.io/task-id": "1"}}})
    ref = JobRef(TaskId(1), "default", "demo-task-1")
    runner.delete(ref)
    assert not server.store.jobs and not server.store.pods  # Background propagation took the pods too
    assert server.requests[-1].query.get("propagationPolicy") == "Background"
    runner.delete(ref)  # 404: already gone is success
    assert server.counters["delete"] == 2


def test_delete_retries_a_5xx(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    server, api = kube
    runner = make_runner(api, sleep=Sleeps())
    runner.launch(sample())
    server.inject(500, count=1, verb="delete")
    runner.delete(JobRef(TaskId(1), "default", "demo-task-1"))
    assert not server.store.jobs


def test_load_api_client_from_a_kubeconfig_context(
    kube: tuple[FakeKubeServer, client.ApiClient], tmp_path: Path
) -> None:
    server, _ = kube
    path = write_kubeconfig(tmp_path / "config", server.url, context="fake")
    api = load_api_client(str(path), "fake", pool_maxsize=12, user_agent="nightwatch/replica-b")
    assert api.configuration.connection_pool_maxsize == 12
    make_runner(api).launch(sample())
    assert server.created_by("default", "demo-task-1") == "nightwatch/replica-b"
    api.close()


def test_load_api_client_reads_kubeconfig_env(
    kube: tuple[FakeKubeServer, client.ApiClient], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = kube
    monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "config", server.url)))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    api = load_api_client(None, None, pool_maxsize=4, user_agent=None)
    assert api.configuration.host == server.url
    api.close()


def test_no_configuration_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(KubernetesConfigError) as caught:
        load_api_client(None, None, pool_maxsize=4, user_agent=None)
    assert "\n" not in str(caught.value) and "no Kubernetes configuration" in str(caught.value)


def test_unknown_context_is_a_one_line_error(kube: tuple[FakeKubeServer, client.ApiClient], tmp_path: Path) -> None:
    server, _ = kube
    path = write_kubeconfig(tmp_path / "config", server.url, context="fake")
    with pytest.raises(KubernetesConfigError) as caught:
        load_api_client(str(path), "nope", pool_maxsize=4, user_agent=None)
    assert "\n" not in str(caught.value)


# -- 403s that are not RBAC, 401 after a token rotation (issue 15) ----------------------------------
def test_a_quota_403_is_deferred_not_forbidden_and_not_blamed_on_rbac(
    kube: tuple[FakeKubeServer, client.ApiClient], caplog: pytest.LogCaptureFixture
) -> None:
    server, api = kube
    runner = make_runner(api)
    runner.launch(sample(1, "first"))
    server.set_job_quota("default", 1, name="q")
    with caplog.at_level(logging.ERROR), pytest.raises(AdmissionDeferred, match="exceeded quota: q") as caught:
        runner.launch(sample(2, "second"))
    assert (caught.value.namespace, caught.value.reason) == ("default", AdmissionDeferred.QUOTA)
    assert not [r for r in caplog.records if "RBAC" in r.getMessage()]
    server.set_job_quota("default", 2)
    assert not runner.launch(sample(2, "second")).adopted


def test_a_quota_403_for_a_job_this_task_already_created_is_adoption(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    runner = make_runner(api)
    runner.launch(sample())  # created, then the replica died before writing Pending
    server.set_job_quota("default", 1)  # ... and the Job fills the quota: the next create is a 403, not a 409
    assert runner.launch(sample()).adopted


def test_namespace_not_ready_is_deferred_and_terminating_is_refused_for_good(
    kube: tuple[FakeKubeServer, client.ApiClient], caplog: pytest.LogCaptureFixture
) -> None:
    server, api = kube
    runner = make_runner(api)
    server.admission_not_ready = 1
    with pytest.raises(AdmissionDeferred, match="not yet ready") as caught:
        runner.launch(sample())
    assert caught.value.reason == AdmissionDeferred.NOT_READY
    assert not runner.launch(sample()).adopted
    server.terminating_namespaces.add("dying")
    with caplog.at_level(logging.ERROR), pytest.raises(JobRefused, match="namespace dying is being deleted") as refused:
        runner.launch(sample(2, "x", namespace="dying"))
    assert type(refused.value) is JobRefused
    assert not [r for r in caplog.records if "RBAC" in r.getMessage()]


def test_a_namespace_that_does_not_exist_is_refused(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    server, api = kube
    server.namespaces = {"default"}
    with pytest.raises(JobRefused, match='namespaces "gone" not found') as caught:
        make_runner(api).launch(sample(namespace="gone"))
    assert type(caught.value) is JobRefused


def dispatch_over(
    api: client.ApiClient, *rows: tuple[str, str]
) -> tuple[DispatchTasks, MemoryTaskRepository, FakeClock]:
    """DispatchTasks on the Kubernetes runner, with Normal rows (name, namespace) as plain SQL would write them."""
    repo, clock = MemoryTaskRepository(), FakeClock()
    for name, namespace in rows:
        repo.add(NewTask(name, namespace, SAMPLE_INFO, 1), clock.now())
    policy = SubmissionPolicy(frozenset({"default", "team-a", "team-b"}))
    runner = make_runner(api, sleep=Sleeps())
    dispatch = DispatchTasks(repo, runner, clock, FixedFence(repo.advance_epoch()), policy=policy)
    return dispatch, repo, clock


def statuses(repo: MemoryTaskRepository) -> dict[str, TaskStatus]:
    return {t.name: t.status for t in repo.list_by_status(list(TaskStatus), limit=100)}


def test_dispatch_keeps_quota_refused_tasks_normal_and_launches_them_when_the_quota_frees(
    kube: tuple[FakeKubeServer, client.ApiClient], caplog: pytest.LogCaptureFixture
) -> None:
    server, api = kube
    server.set_job_quota("team-a", 0, name="q")
    dispatch, repo, clock = dispatch_over(api, ("a-1", "team-a"), ("a-2", "team-a"), ("b-1", "team-b"))
    with caplog.at_level(logging.WARNING):
        report = dispatch()
        clock.advance(3)
        dispatch()
    assert report.deferred_by_reason == {"quota": 2} and report.launched == 1
    assert statuses(repo) == {"a-1": TaskStatus.NORMAL, "a-2": TaskStatus.NORMAL, "b-1": TaskStatus.PENDING}
    quota_lines = [r.getMessage() for r in caplog.records if "team-a" in r.getMessage()]
    assert len(quota_lines) == 1 and "exceeded quota: q" in quota_lines[0] and "RBAC" not in quota_lines[0]
    server.set_job_quota("team-a", None)
    clock.advance(60)
    dispatch()
    dispatch()
    assert set(statuses(repo).values()) == {TaskStatus.PENDING}
    assert {name for ns, name in server.store.jobs if ns == "team-a"} == {"a-1", "a-2"}


def test_dispatch_fails_an_rbac_403_with_the_rbac_message(
    kube: tuple[FakeKubeServer, client.ApiClient], caplog: pytest.LogCaptureFixture
) -> None:
    server, api = kube
    server.forbidden_namespaces.add("team-a")
    dispatch, repo, _ = dispatch_over(api, ("a-1", "team-a"))
    with caplog.at_level(logging.ERROR):
        assert dispatch().failed == 1
    [task] = repo.list_by_status([TaskStatus.FAILED])
    assert 'cannot create resource "jobs" in API group "batch" in the namespace "team-a"' in task.message
    assert any("RBAC" in r.getMessage() and "team-a" in r.getMessage() for r in caplog.records)


def test_dispatch_keeps_tasks_normal_while_admission_is_not_ready(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    server.admission_not_ready = 1
    dispatch, repo, clock = dispatch_over(api, ("a-1", "default"))
    assert dispatch().deferred_by_reason == {"not-ready": 1}
    assert statuses(repo) == {"a-1": TaskStatus.NORMAL}
    clock.advance(3)
    assert dispatch().launched == 1 and statuses(repo) == {"a-1": TaskStatus.PENDING}


def test_launches_keep_working_after_the_token_file_rotates(tmp_path: Path) -> None:
    server = FakeKubeServer(token="token-1").start()
    try:
        token_file = tmp_path / "token"
        token_file.write_text("token-1\n")
        path = write_kubeconfig(tmp_path / "config", server.url, token_file=token_file)
        api = load_api_client(str(path), None, pool_maxsize=4, user_agent="nightwatch/replica-a")
        runner = make_runner(api)
        runner.launch(sample(1, "before"))
        # The old token stops working, and the kubelet writes the new one to the file (its length differs:
        # two writes within one coarse-clock tick may share an mtime, and a kubelet swaps a symlink anyway).
        server.rotate_token("token-2-rotated")
        token_file.write_text("token-2-rotated\n")
        assert not runner.launch(sample(2, "after")).adopted
        assert {name for _, name in server.store.jobs} == {"before", "after"}
        api.close()
    finally:
        server.stop()


def test_a_rejected_token_is_retryable_not_a_refusal(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    server, api = kube
    server.rotate_token("only-this")
    with pytest.raises(RetryableError, match="unauthorized: Unauthorized"):
        make_runner(api).launch(sample())
