"""No task waits silently (issue 15): pods refused by admission, a start timeout, a suspended Job, and
the exit code of a Job past its deadline, through the Kubernetes runner (and SyncTasks) on the fake.

Each test fails on the code before this change: the message stayed empty, the task stayed Pending or
Running, or the failure had no exit code. The Events diagnosis's API cost and the time from a
FailedCreate to the message are printed (`pytest -s`) for the issue's figures.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from nightwatch.adapters.clock import SystemClock
from nightwatch.adapters.kubernetes import KubernetesJobRunner, KubernetesSettings
from nightwatch.adapters.memory import FakeClock, FixedFence, MemoryTaskRepository
from nightwatch.app.usecases.dispatch import DispatchTasks
from nightwatch.app.usecases.sync import SyncTasks
from nightwatch.domain.jobspec import JobSpec, LaunchRequest
from nightwatch.domain.model import TaskId, TaskStatus
from nightwatch.domain.observation import JobPhase
from nightwatch.domain.ports import JobRef, NewTask
from nightwatch.domain.submission import SubmissionPolicy
from tests.fakekube.fixtures import running_fake_kube
from tests.fakekube.server import FakeKubeServer
from tests.support.waiting import wait_until

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
QUOTA = "exceeded quota: compute, requested: pods=1, used: pods=10, limited: pods=10"
RESTRICTED = (
    'violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "task" must set '
    'securityContext.allowPrivilegeEscalation=false), runAsNonRoot != true (pod or container "task" must set '
    "securityContext.runAsNonRoot=true)"
)


@pytest.fixture
def kube() -> Iterator[tuple[FakeKubeServer, client.ApiClient]]:
    with running_fake_kube() as pair:
        yield pair


def real_clock_runner(api: client.ApiClient, **settings: Any) -> KubernetesJobRunner:
    return KubernetesJobRunner(api, KubernetesSettings(qps=0, **settings), sleep=lambda _: None)


def launch(
    runner: KubernetesJobRunner,
    task_id: int,
    namespace: str = "default",
    started_at: datetime | None = None,
    **info: Any,
) -> JobRef:
    name = f"task-{task_id}"
    spec = JobSpec.model_validate({"image": "alpine", **info})
    runner.launch(LaunchRequest(TaskId(task_id), name, namespace, spec))
    return JobRef(TaskId(task_id), namespace, name, started_at=started_at or datetime.now(UTC))


def pending_pod(task_id: int, reason: str, message: str) -> dict[str, Any]:
    """A pending pod of task `task_id` whose container waits for `reason`."""
    return {
        "metadata": {
            "name": f"task-{task_id}-p",
            "labels": {
                "app.kubernetes.io/managed-by": "nightwatch",
                "app": "task-job",
                "nightwatch.io/task-id": str(task_id),
            },
        },
        "status": {
            "phase": "Pending",
            "containerStatuses": [{"name": "task", "state": {"waiting": {"reason": reason, "message": message}}}],
        },
    }


def reads(server: FakeKubeServer) -> Counter[str]:
    """List calls by resource (jobs, pods, events)."""
    return Counter(r.path.rsplit("/", 1)[-1] for r in server.requests if r.verb == "list")


# -- pods refused by admission: the controller's reason, from one Events list per namespace -------------
def test_refused_pods_give_the_failed_create_reason_within_pending_diagnosis_after(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    server.refuse_pods("locked", RESTRICTED)
    server.set_controller("timed", active_after_ms=0, complete_after_ms=600_000)
    runner = real_clock_runner(api, pending_diagnosis_after_seconds=3)
    launched = time.monotonic()
    ref = launch(runner, 1, "locked")
    event = wait_until(lambda: server.events.about("locked", "task-1"), 5, interval=0.01, what="FailedCreate")
    event_seen = time.monotonic()
    assert event[0]["reason"] == "FailedCreate"

    def message() -> str:
        seen = runner.observe([ref])[ref.task_id]
        assert seen.phase is JobPhase.PENDING
        return seen.message

    text = wait_until(message, 5, interval=0.05, what="the FailedCreate reason in the message")
    arrived = time.monotonic()
    assert text.startswith('FailedCreate: Error creating: pods "task-1-') and text.endswith(RESTRICTED)
    assert arrived - launched <= 3, "the reason must arrive within pending_diagnosis_after"
    print(
        f"\nFIGURE FailedCreate -> observed message: {arrived - event_seen:.2f} s "
        f"(Job created -> message {arrived - launched:.2f} s; no-pod grace 2 s, then the next observation)"
    )


def test_events_cost_one_list_per_namespace_per_tick_for_1000_pending_tasks_in_10_namespaces(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    namespaces = [f"team-{i}" for i in range(10)]
    for namespace in namespaces:
        server.refuse_pods(namespace, QUOTA)
    clock = FakeClock(NOW)
    runner = KubernetesJobRunner(api, KubernetesSettings(qps=0), now=clock.now, sleep=lambda _: None)
    with ThreadPoolExecutor(max_workers=8) as pool:
        refs = list(
            pool.map(
                lambda i: launch(runner, i, namespaces[i % 10], started_at=NOW - timedelta(seconds=60)),
                range(1, 1001),
            )
        )
    server.set_controller("timed", active_after_ms=0, complete_after_ms=600_000)
    wait_until(lambda: len(server.events.events) == 1000, 20, what="1,000 FailedCreate Events")
    server.set_controller("off")
    server.reset_counters()

    seen = runner.observe(refs)  # a tick
    first = reads(server)
    server.reset_counters()
    runner.observe(refs)  # the next tick: the pods answer is reused, Events are read again
    second = reads(server)

    assert all(seen[r.task_id].message.startswith(f'FailedCreate: Error creating: pods "{r.job_name}-') for r in refs)
    assert all(seen[r.task_id].message.endswith(QUOTA) for r in refs)
    assert first == Counter({"jobs": 10, "events": 10, "pods": 10})
    assert second == Counter({"jobs": 10, "events": 10})
    events = [r for r in server.requests if r.path.endswith("/events")]
    assert all(r.query["fieldSelector"] == "involvedObject.kind=Job,reason=FailedCreate" for r in events)
    assert server.counters["get"] == 0
    print(
        f"\nFIGURE 1,000 pending tasks (pods refused) in 10 namespaces, API calls per tick: first tick {dict(first)}, "
        f"next ticks {dict(second)}: {second['events']} Events lists per tick (one per namespace), none per task"
    )


def test_an_old_failed_create_of_an_earlier_job_of_that_name_is_not_this_jobs(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    runner = real_clock_runner(api, pending_diagnosis_after_seconds=0)
    ref = launch(runner, 1)
    stale = {**server.job("default", "task-1"), "metadata": {**server.job("default", "task-1")["metadata"], "uid": "x"}}
    server.events.record(stale, "Job", "Warning", "FailedCreate", "Error creating: an hour ago")
    assert runner.observe([ref])[ref.task_id].message == ""


def test_events_forbidden_by_rbac_are_logged_once_per_namespace_and_asked_again_only_after_a_back_off(
    kube: tuple[FakeKubeServer, client.ApiClient], caplog: pytest.LogCaptureFixture
) -> None:
    # RBAC not yet updated with `events list`: a 403 for every Events list, never for Jobs or pods.
    server, api = kube
    clock = FakeClock(NOW)
    runner = KubernetesJobRunner(api, KubernetesSettings(qps=0), now=clock.now, sleep=lambda _: None)
    namespaces = ("team-a", "team-b")
    refs = [launch(runner, i, ns, started_at=NOW - timedelta(minutes=1)) for i, ns in enumerate(namespaces, 1)]
    for ref in refs:  # no pod runs (active: 0), so Events are wanted; a pending pod says why
        server.add_pod(ref.namespace, pending_pod(ref.task_id, "ImagePullBackOff", "no such image"))
    server.inject(403, count=1000, verb="list", path="/events")
    server.reset_counters()

    def ticks(minutes: int) -> tuple[Counter[str], list[logging.LogRecord]]:
        """One observe a minute for `minutes` minutes: Events lists per namespace, warnings logged."""
        start = len(server.requests)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="nightwatch"):
            for _ in range(minutes):
                seen = runner.observe(refs)
                # The pod-level reason is still given while Events cannot be read.
                assert all(seen[r.task_id].message == "ImagePullBackOff: no such image" for r in refs)
                clock.advance(60)
        lists = Counter(r.path.split("/")[4] for r in server.requests[start:] if r.path.endswith("/events"))
        return lists, [r for r in caplog.records if "vents" in r.getMessage()]

    lists, logged = ticks(21)  # minutes 0..20: asked at 0, 5, 10, 15, 20 (a back-off of 5 minutes)
    assert lists == Counter({ns: 5 for ns in namespaces})
    for ns in namespaces:  # an ERROR at the first 403, then a reminder at most every 10 minutes
        lines = [r for r in logged if ns in r.getMessage()]
        assert [r.levelname for r in lines] == ["ERROR", "WARNING", "WARNING"], [r.getMessage() for r in lines]
        assert "RBAC" in lines[0].getMessage() and "events" in lines[0].getMessage()
    assert server.counters["list"] - sum(lists.values()) > 0  # Jobs and pods were listed every tick

    server.faults.clear()  # RBAC updated: asked again once the back-off ends, then every tick as before
    clock.advance(4 * 60)
    lists, logged = ticks(3)
    assert lists == Counter({ns: 3 for ns in namespaces})
    assert sorted((r.levelname, ns) for r in logged for ns in namespaces if ns in r.getMessage()) == [
        ("INFO", "team-a"),
        ("INFO", "team-b"),
    ]


# -- startTimeoutSeconds -------------------------------------------------------------------------------
def test_a_start_timeout_deletes_the_job_and_fails_the_task_with_the_last_known_reason(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    server.refuse_pods("locked", QUOTA)
    server.set_controller("timed", active_after_ms=0, complete_after_ms=600_000)
    runner = real_clock_runner(api, pending_diagnosis_after_seconds=0.5, start_timeout_seconds=3600)
    own = launch(runner, 1, "locked", startTimeoutSeconds=1)  # the task's own timeout
    off = launch(runner, 2, "locked", startTimeoutSeconds=0)  # turned off for this task
    default = launch(runner, 3, "locked")  # the configured one: an hour
    assert server.job("locked", "task-1")["metadata"]["annotations"] == {"nightwatch.io/start-timeout-seconds": "1"}

    def failed() -> Any:
        seen = runner.observe([own, off, default])
        return seen if seen[own.task_id].phase is JobPhase.FAILED else None

    seen = wait_until(failed, 10, interval=0.1, what="the start timeout")
    assert seen[own.task_id].reason == "StartTimeout"
    assert seen[own.task_id].message.startswith("no pod was running 1 s after the Job started, so it was deleted")
    assert 'last known reason: FailedCreate: Error creating: pods "task-1-' in seen[own.task_id].message
    assert seen[own.task_id].message.endswith(QUOTA)
    with pytest.raises(ApiException) as gone:
        client.BatchV1Api(api).read_namespaced_job("task-1", "locked")
    assert gone.value.status == 404
    assert seen[off.task_id].phase is JobPhase.PENDING and seen[default.task_id].phase is JobPhase.PENDING


def test_the_configured_start_timeout_fails_an_image_that_cannot_be_pulled(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    clock = FakeClock(datetime.now(UTC))
    runner = KubernetesJobRunner(
        api, KubernetesSettings(qps=0, start_timeout_seconds=300), now=clock.now, sleep=lambda _: None
    )
    ref = launch(runner, 1, started_at=clock.now())
    job = server.job("default", "task-1")
    server.set_job_status(
        "default", "task-1", {"active": 1, "ready": 0, "startTime": job["metadata"]["creationTimestamp"]}
    )
    server.add_pod(
        "default",
        {
            "metadata": {"name": "task-1-abcde", "labels": job["spec"]["template"]["metadata"]["labels"]},
            "status": {
                "phase": "Pending",
                "containerStatuses": [
                    {"name": "task", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "not found"}}}
                ],
            },
        },
    )
    clock.advance(299)
    assert runner.observe([ref])[ref.task_id].phase is JobPhase.PENDING
    clock.advance(2)
    seen = runner.observe([ref])[ref.task_id]
    assert seen.summary == (
        "StartTimeout: no pod was running 300 s after the Job started, so it was deleted; "
        "last known reason: ImagePullBackOff: not found"
    )
    assert ("default", "task-1") not in server.store.jobs


# -- suspend, through SyncTasks: Running -> Pending (message) -> Running -> Succeeded --------------------
def test_a_suspended_job_sends_its_running_task_back_to_pending_and_resume_runs_it_to_success(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    server.set_controller("timed", active_after_ms=0, complete_after_ms=600_000, pods=True)
    repo, clock = MemoryTaskRepository(), SystemClock()
    fence = FixedFence(repo.advance_epoch())
    runner = real_clock_runner(api)
    task = repo.add(
        NewTask("suspended", "default", json.dumps({"image": "alpine", "command": ["sleep", "1"]})), clock.now()
    )
    DispatchTasks(repo, runner, clock, fence, policy=SubmissionPolicy())()
    sync = SyncTasks(repo, runner, clock, fence)

    def status_is(wanted: TaskStatus) -> bool:
        sync()
        return repo.get(task.id).status is wanted

    wait_until(lambda: status_is(TaskStatus.RUNNING), 5, interval=0.05, what="Running")
    batch = client.BatchV1Api(api)
    batch.patch_namespaced_job("suspended", "default", {"spec": {"suspend": True}})
    wait_until(lambda: status_is(TaskStatus.PENDING), 5, interval=0.05, what="Pending after suspend")
    assert repo.get(task.id).message == "Suspended: JobSuspended: Job suspended"
    assert server.store.pods == {}  # its pod was deleted
    time.sleep(1.2)  # longer than the task's own 1 s: a suspended Job does not finish
    sync()
    assert repo.get(task.id).status is TaskStatus.PENDING

    batch.patch_namespaced_job("suspended", "default", {"spec": {"suspend": False}})
    wait_until(lambda: status_is(TaskStatus.RUNNING), 5, interval=0.05, what="Running after resume")
    assert repo.get(task.id).message == ""
    wait_until(lambda: status_is(TaskStatus.SUCCEEDED), 5, interval=0.05, what="Succeeded")


# -- a deadline with pods still terminating: the exit code ---------------------------------------------
def test_a_deadline_waits_for_the_terminating_pods_and_records_the_exit_code(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    server.set_controller("timed", active_after_ms=0, complete_after_ms=600_000, pods=True, terminate_after_ms=600)
    runner = real_clock_runner(api)
    ref = launch(runner, 1, activeDeadlineSeconds=1, command=["sleep", "60"])
    observations = []  # Active, then none while the pods terminate (FailureTarget), then Failed
    deadline = time.monotonic() + 10
    seen = None
    while time.monotonic() < deadline:
        observation = runner.observe([ref]).get(ref.task_id)
        observations.append(observation)
        if observation is not None and observation.phase is JobPhase.FAILED:
            seen = observation
            break
        time.sleep(0.05)
    assert None in observations, "no outcome while the pods terminate (the fake's FailureTarget step)"
    assert seen is not None
    assert seen.summary == (
        "DeadlineExceeded: Job was active longer than specified deadline (container task exited with code 137)"
    )
