"""KubernetesJobRunner.observe over the wire: few list calls, no GETs, pods read only when useful."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client

from nightwatch.adapters.kubernetes import KubernetesJobRunner, KubernetesSettings
from nightwatch.adapters.memory import FakeClock
from nightwatch.domain.errors import RetryableError
from nightwatch.domain.jobspec import JobSpec, LaunchRequest
from nightwatch.domain.model import TaskId
from nightwatch.domain.observation import JobPhase
from nightwatch.domain.ports import JobRef
from tests.fakekube.controller import failed_pod
from tests.fakekube.fixtures import running_fake_kube
from tests.fakekube.server import FakeKubeServer

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def kube() -> Iterator[tuple[FakeKubeServer, client.ApiClient]]:
    with running_fake_kube() as pair:
        yield pair


def make_runner(api: client.ApiClient, **kwargs: Any) -> KubernetesJobRunner:
    """A runner on `api`: keywords naming a `KubernetesSettings` field go there, the rest to the runner."""
    clock = FakeClock(NOW)
    settings = {"qps": 0} | {key: kwargs.pop(key) for key in list(kwargs) if key in KubernetesSettings.model_fields}
    kwargs.setdefault("now", clock.now)
    kwargs.setdefault("sleep", lambda _: None)
    return KubernetesJobRunner(api, KubernetesSettings(**settings), **kwargs)


def launch(runner: KubernetesJobRunner, task_id: int, namespace: str = "default", image: str = "alpine") -> JobRef:
    name = f"task-{task_id}"
    runner.launch(LaunchRequest(TaskId(task_id), name, namespace, JobSpec(image=image)))
    return JobRef(TaskId(task_id), namespace, name)


POD_LABELS = {"app.kubernetes.io/managed-by": "nightwatch", "app": "task-job"}


def waiting_pod(task_id: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "metadata": {"name": f"task-{task_id}-p", "labels": {**POD_LABELS, "nightwatch.io/task-id": str(task_id)}},
        "status": {
            "phase": "Pending",
            "containerStatuses": [{"name": "task", "state": {"waiting": {"reason": reason, "message": message}}}],
        },
    }


def pod_reads(server: FakeKubeServer) -> list[str]:
    """Each pod list as `labelSelector [fieldSelector]`."""
    return [
        " ".join(filter(None, (r.query.get("labelSelector", ""), r.query.get("fieldSelector"))))
        for r in server.requests
        if r.path.endswith("/pods")
    ]


NAMESPACE_PENDING_PODS = "app.kubernetes.io/managed-by=nightwatch status.phase=Pending"


def test_a_thousand_tasks_in_four_namespaces_cost_two_lists_each_and_no_get(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    runner = make_runner(api, list_page_size=200)
    namespaces = ["ns-a", "ns-b", "ns-c", "ns-d"]
    with ThreadPoolExecutor(max_workers=8) as pool:
        refs = list(pool.map(lambda i: launch(runner, i, namespaces[i % 4]), range(1, 1001)))
    for ref in refs[::3]:
        server.set_job_state(ref.namespace, ref.job_name, "active")
    for ref in refs[1::3]:
        server.set_job_state(ref.namespace, ref.job_name, "succeeded")
    server.reset_counters()

    seen = runner.observe(refs)

    assert set(seen) == {r.task_id for r in refs}
    assert server.counters["list"] == 8  # 250 Jobs per namespace, pages of 200
    assert server.counters["get"] == 0
    assert all(seen[r.task_id].phase is JobPhase.ACTIVE for r in refs[::3])
    assert all(seen[r.task_id].phase is JobPhase.SUCCEEDED for r in refs[1::3])
    assert all(seen[r.task_id].phase is JobPhase.PENDING for r in refs[2::3])
    assert all(r.query.get("labelSelector") == "app.kubernetes.io/managed-by=nightwatch" for r in server.requests)


def test_a_job_of_that_name_for_another_task_is_missing(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    _, api = kube
    runner = make_runner(api)
    launch(runner, 7)
    seen = runner.observe([JobRef(TaskId(8), "default", "task-7"), JobRef(TaskId(9), "other", "task-9")])
    assert seen[TaskId(8)].phase is JobPhase.MISSING and seen[TaskId(9)].phase is JobPhase.MISSING
    assert "outcome unknown" in seen[TaskId(8)].message


def test_stale_pending_task_gets_its_image_pull_error_and_only_it_reads_pods(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    runner = make_runner(api, pending_diagnosis_after_seconds=30)
    stale = launch(runner, 1, image="no-such-image")
    fresh = launch(runner, 2, image="no-such-image")
    running = launch(runner, 3)
    server.set_job_state("default", "task-3", "active")
    message = 'Back-off pulling image "no-such-image"'
    server.add_pod("default", waiting_pod(1, "ImagePullBackOff", message))
    server.add_pod("default", waiting_pod(2, "ImagePullBackOff", message))
    refs = [
        JobRef(stale.task_id, "default", stale.job_name, started_at=NOW - timedelta(seconds=60)),
        JobRef(fresh.task_id, "default", fresh.job_name, started_at=NOW - timedelta(seconds=5)),
        JobRef(running.task_id, "default", running.job_name, started_at=NOW - timedelta(seconds=600)),
    ]
    server.reset_counters()

    seen = runner.observe(refs)

    assert seen[stale.task_id].phase is JobPhase.PENDING
    assert seen[stale.task_id].message == f"ImagePullBackOff: {message}"
    assert seen[fresh.task_id].message == "" and seen[running.task_id].phase is JobPhase.ACTIVE
    assert pod_reads(server) == [NAMESPACE_PENDING_PODS]  # one list for the namespace, not one per task


def test_no_pod_read_when_no_task_is_stuck(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    server, api = kube
    runner = make_runner(api, pending_diagnosis_after_seconds=30)
    ref = launch(runner, 1)
    server.reset_counters()
    runner.observe([JobRef(ref.task_id, "default", ref.job_name, started_at=NOW - timedelta(seconds=5))])
    assert pod_reads(server) == []


def test_unschedulable_pod_is_the_diagnosis(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    server, api = kube
    runner = make_runner(api)
    ref = launch(runner, 1)
    server.add_pod(
        "default",
        {
            "metadata": {"labels": {**POD_LABELS, "nightwatch.io/task-id": "1"}},
            "status": {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/3 nodes are available: 3 Insufficient memory.",
                    }
                ],
            },
        },
    )
    stale = JobRef(ref.task_id, ref.namespace, ref.job_name, started_at=NOW - timedelta(minutes=5))
    seen = runner.observe([stale])[ref.task_id]
    assert seen.message == "Unschedulable: 0/3 nodes are available: 3 Insufficient memory."


def test_many_stuck_tasks_cost_one_pod_list_per_namespace_and_period(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    # Thousands of tasks waiting for quota must not cost a pod read each per tick: that would
    # starve the rate limiter and delay every new Job.
    server, api = kube
    clock = FakeClock(NOW)
    runner = make_runner(api, now=clock.now, pending_diagnosis_after_seconds=30)
    refs = []
    for i in range(1, 31):
        namespace = "default" if i % 2 else "demo"
        ref = launch(runner, i, namespace=namespace, image="typo")
        server.add_pod(namespace, waiting_pod(i, "ErrImagePull", "not found"))
        refs.append(JobRef(ref.task_id, ref.namespace, ref.job_name, started_at=NOW - timedelta(hours=1)))
    running_pod = waiting_pod(99, "ErrImagePull", "x")
    running_pod["status"]["phase"] = "Running"  # not pending: never listed
    server.add_pod("default", running_pod)
    server.reset_counters()
    seen = runner.observe(refs)
    assert sorted(pod_reads(server)) == [NAMESPACE_PENDING_PODS] * 2
    assert all(o.phase is JobPhase.PENDING and o.message == "ErrImagePull: not found" for o in seen.values())
    server.reset_counters()
    assert runner.observe(refs) == seen and pod_reads(server) == []  # within the period: the last answer
    clock.advance(31)
    runner.observe(refs)
    assert len(pod_reads(server)) == 2


def test_failure_pod_reads_are_capped_per_observe_call(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    server, api = kube
    runner = make_runner(api, max_pod_reads=20)
    refs = []
    for i in range(1, 31):
        refs.append(launch(runner, i))
        server.set_job_state("default", f"task-{i}", "failed")
    server.reset_counters()
    seen = runner.observe(refs)
    assert len(pod_reads(server)) == 20
    assert all(o.phase is JobPhase.FAILED for o in seen.values())
    # Past the cap no observation, rather than a failure judged without its exit code (which no
    # retry policy's exitCodes would match): the rest are observed, with their pods, next time.
    assert len(seen) == 20
    rest = [ref for ref in refs if ref.task_id not in seen]
    server.reset_counters()
    later = runner.observe(rest)
    assert len(pod_reads(server)) == 10 and set(later) == {ref.task_id for ref in rest}


def test_a_failed_job_whose_pods_cannot_be_read_yet_is_not_judged_without_them(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    runner = make_runner(api)
    ref = launch(runner, 1)
    server.set_job_state("default", "task-1", "failed")
    server.add_pod("default", failed_pod(server.job("default", "task-1"), exit_code=3, reason="Error"))
    server.inject(500, count=100, path="/pods")
    assert runner.observe([ref]) == {}  # no evidence yet: no observation, the task stays as it is
    server.faults.clear()
    seen = runner.observe([ref])[ref.task_id]
    assert seen.phase is JobPhase.FAILED and seen.exit_code == 3


def test_failed_job_says_backoff_limit_and_the_exit_code(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    server, api = kube
    runner = make_runner(api)
    ref = launch(runner, 1)
    server.set_job_state("default", "task-1", "failed")
    server.add_pod("default", failed_pod(server.job("default", "task-1"), exit_code=137, reason="OOMKilled"))
    seen = runner.observe([ref])[ref.task_id]
    assert seen.phase is JobPhase.FAILED
    assert seen.reason == "BackoffLimitExceeded"
    assert seen.summary == (
        "BackoffLimitExceeded: Job has reached the specified backoff limit (container task was OOMKilled (exit code 137))"
    )


def test_failed_job_without_pods_still_says_why(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    server, api = kube
    runner = make_runner(api)
    ref = launch(runner, 1)
    server.set_job_state("default", "task-1", "failed", reason="DeadlineExceeded", message="Job was active longer")
    seen = runner.observe([ref])[ref.task_id]
    assert seen.summary == "DeadlineExceeded: Job was active longer"


def test_success_conditions(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    server, api = kube
    runner = make_runner(api)
    ref = launch(runner, 1)
    # Kubernetes >= 1.31 sets SuccessCriteriaMet before Complete: terminal already.
    server.set_job_status(
        "default",
        "task-1",
        {
            "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "message": "done"}
            ]
        },
    )
    assert runner.observe([ref])[ref.task_id].phase is JobPhase.SUCCEEDED


def test_list_errors_are_retried_then_retryable(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    server, api = kube
    runner = make_runner(api, max_attempts=3)
    ref = launch(runner, 1)
    server.inject(500, count=2, verb="list")
    assert runner.observe([ref])[ref.task_id].phase is JobPhase.PENDING
    server.inject(429, count=3, verb="list")
    with pytest.raises(RetryableError, match="list Jobs in default"):
        runner.observe([ref])


def test_forbidden_list_is_retryable_and_logged(
    kube: tuple[FakeKubeServer, client.ApiClient], caplog: pytest.LogCaptureFixture
) -> None:
    server, api = kube
    server.forbidden_namespaces.add("locked")
    with pytest.raises(RetryableError, match="cannot list Jobs in locked"):
        make_runner(api).observe([JobRef(TaskId(1), "locked", "x")])
    assert any("locked" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)


def test_timed_controller_moves_jobs_to_their_end(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    server, api = kube
    server.set_controller("timed", active_after_ms=10, complete_after_ms=60)
    runner = make_runner(api)
    ok, bad = launch(runner, 1), launch(runner, 2, image="fail")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        seen = runner.observe([ok, bad])
        if seen[ok.task_id].phase is JobPhase.SUCCEEDED and seen[bad.task_id].phase is JobPhase.FAILED:
            break
        time.sleep(0.02)
    assert seen[ok.task_id].phase is JobPhase.SUCCEEDED
    assert seen[bad.task_id].reason == "BackoffLimitExceeded" and "exited with code 1" in seen[bad.task_id].message


def test_a_namespace_that_cannot_be_read_does_not_stop_the_others(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    runner = make_runner(api)
    ok = launch(runner, 1, namespace="team-a")
    blocked = launch(runner, 2, namespace="team-b")
    server.forbidden_namespaces.add("team-b")  # RBAC missing there
    seen = runner.observe([ok, blocked])
    assert set(seen) == {ok.task_id}  # team-b's task gets no observation: it stays as it is
    with pytest.raises(RetryableError, match="team-b"):
        runner.observe([blocked])  # nothing could be read at all: the whole call fails


# -- continue tokens that expire or are refused (issue 15) ------------------------------------------
def job_lists(server: FakeKubeServer) -> list[bool]:
    """Each Job list request: True if it carried a continue token."""
    return [bool(r.query.get("continue")) for r in server.requests if r.verb == "list" and r.path.endswith("/jobs")]


def test_an_expired_continue_token_mid_list_still_observes_every_job(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    runner = make_runner(api, list_page_size=10)
    refs = [launch(runner, i) for i in range(1, 36)]
    server.reset_counters()
    server.expire_continue_tokens(1)  # etcd compacts while the listing is between its first and second page
    observed = runner.observe(refs)
    assert {t: o.phase for t, o in observed.items()} == {ref.task_id: JobPhase.PENDING for ref in refs}
    # The list went on from the fresh token the 410 carried (page 2 again, then 3 and 4): it never started over.
    assert job_lists(server) == [False, True, True, True, True]


def test_continue_tokens_that_keep_expiring_leave_the_namespace_unobserved_after_a_bounded_retry(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    runner = make_runner(api, list_page_size=1)
    refs = [launch(runner, i) for i in range(1, 11)]
    server.reset_counters()
    server.expire_continue_tokens(1000)  # every page's token is compacted before it is used
    with pytest.raises(RetryableError, match="cannot list Jobs in default: The provided continue parameter is too old"):
        runner.observe(refs)
    # The first page, then three times an expired token and the fresh one's page, then a fourth expiry: give up.
    assert job_lists(server) == [False] + [True] * 7


def test_a_continue_token_the_server_calls_malformed_restarts_the_list_once(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    runner = make_runner(api, list_page_size=2)
    refs = [launch(runner, i) for i in range(1, 6)]
    server.reset_counters()
    server.inject(400, count=1, verb="list")  # hits the first page; a bare 400 is not about a token
    with pytest.raises(RetryableError, match="cannot list Jobs in default"):
        runner.observe(refs)
    pages = iter([True])

    def refuse_one_token(verb: str, user_agent: str) -> None:
        last = server.requests[-1]
        if verb == "list" and last.query.get("continue") and next(pages, False):
            server.inject(400, count=1, verb="list")

    server.on_request = refuse_one_token
    server.reset_counters()
    observed = runner.observe(refs)
    assert all(o.phase is JobPhase.PENDING for o in observed.values()) and len(observed) == 5
    assert job_lists(server) == [False, True, False, True, True]
