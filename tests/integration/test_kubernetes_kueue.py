"""Kueue mode against the fake API server: the Job is created suspended with Kueue's labels, nightwatch
never unsuspends it (dispatch, sync and adoption send no patch), the task reads `Queued by Kueue: ...`
and does not count against a queue's max_in_flight; when "Kueue" admits it (unsuspends), it runs."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from kubernetes import client

from nightwatch.adapters.clock import SystemClock
from nightwatch.adapters.kubernetes import KubernetesJobRunner, KubernetesSettings
from nightwatch.adapters.kubernetes.settings import KueueSettings
from nightwatch.adapters.memory import FixedFence, MemoryQueueStates, MemoryTaskRepository
from nightwatch.app.usecases.dispatch import DispatchTasks
from nightwatch.app.usecases.sync import SyncTasks
from nightwatch.domain.model import TaskStatus
from nightwatch.domain.ports import NewTask
from nightwatch.domain.profiles import ProfileCatalog
from nightwatch.domain.queues import Queue, Queues
from nightwatch.domain.submission import SubmissionPolicy
from tests.fakekube.fixtures import running_fake_kube
from tests.fakekube.server import FakeKubeServer
from tests.support.waiting import wait_until

INFO = json.dumps({"image": "alpine", "command": ["sleep", "1"]})


@pytest.fixture
def kube() -> Iterator[tuple[FakeKubeServer, client.ApiClient]]:
    with running_fake_kube(user_agent="nightwatch/kueue") as pair:
        yield pair


def kueue_runner(api: client.ApiClient) -> KubernetesJobRunner:
    settings = KubernetesSettings(
        qps=0,
        request_timeout_seconds=5.0,
        kueue=KueueSettings(queue_name="team-a", priority_class="low"),
        kueue_namespaces={"ml": KueueSettings(queue_name="gpu")},
    )
    return KubernetesJobRunner(api, settings)


def test_kueue_mode_creates_suspended_jobs_that_nightwatch_never_unsuspends(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    server.set_controller("timed", active_after_ms=0, complete_after_ms=300, pods=True)
    repo, clock = MemoryTaskRepository(), SystemClock()
    fence = FixedFence(repo.advance_epoch())
    runner = kueue_runner(api)
    queues = Queues((Queue("q", max_in_flight=1),))
    policy = SubmissionPolicy(frozenset({"default", "ml"}), queues=queues.names)
    first = repo.add(NewTask("first", "default", INFO), clock.now())
    second = repo.add(NewTask("second", "ml", INFO), clock.now())
    dispatch = DispatchTasks(repo, runner, clock, fence, policy=policy, queues=queues, queue_states=MemoryQueueStates())
    sync = SyncTasks(repo, runner, clock, fence)

    assert dispatch().launched == 1  # q allows one in flight
    body = server.created_bodies()[0]
    assert body["spec"]["suspend"] is True
    assert body["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert body["metadata"]["labels"]["kueue.x-k8s.io/priority-class"] == "low"

    def queued(task_id: int) -> bool:
        # "Queued by Kueue: waiting for admission" first (no condition yet), then the Job controller's
        # Suspended condition: with the watch, sync can see the first before the second.
        sync()
        return repo.get(task_id).message == "Queued by Kueue: JobSuspended: Job suspended"  # type: ignore[arg-type]

    wait_until(lambda: queued(first.id), 5, interval=0.05, what="Queued by Kueue")
    task = repo.get(first.id)
    assert task.status is TaskStatus.PENDING
    assert task.message == "Queued by Kueue: JobSuspended: Job suspended"
    # Kueue owns its admission: it does not hold nightwatch's slot, so the second task launches.
    assert dispatch().launched == 1
    ml = server.created_bodies()[1]
    assert ml["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu"
    assert "kueue.x-k8s.io/priority-class" not in ml["metadata"]["labels"]
    for _ in range(3):
        sync()
        dispatch()
    assert server.job("default", "first")["spec"]["suspend"] is True  # never unsuspended by nightwatch
    assert not [r for r in server.requests if r.method == "PATCH" and "suspend" in json.dumps(r.body)]

    # Kueue admits it: the Job runs and the task follows.
    client.BatchV1Api(api).patch_namespaced_job("first", "default", {"spec": {"suspend": False}})

    def status_is(wanted: TaskStatus) -> bool:
        sync()
        return repo.get(first.id).status is wanted

    wait_until(lambda: status_is(TaskStatus.SUCCEEDED), 10, interval=0.05, what="Succeeded after admission")
    assert repo.get(second.id).status in (TaskStatus.PENDING, TaskStatus.RUNNING)


# -- Kueue from a Job profile ---------------------------------------------------------------------------
PROFILES = {
    # Over the namespace's Kueue mode (ml: gpu) and the global one (team-a, low).
    "batch": {"kueue": {"queue_name": "batch-q", "priority_class": "batch-high"}},
    # Kueue holds the Job, but nightwatch's queue limit still counts it.
    "shared": {"kueue": {"queue_name": "shared-q", "owns_admission": False}},
}


def profile_world(
    api: client.ApiClient, *, watch: bool = False
) -> tuple[MemoryTaskRepository, DispatchTasks, SyncTasks]:
    repo, clock = MemoryTaskRepository(), SystemClock()
    fence = FixedFence(repo.advance_epoch())
    settings = KubernetesSettings(qps=0, request_timeout_seconds=5.0, watch=watch)  # no Kueue in config
    runner = KubernetesJobRunner(api, settings)
    queues = Queues((Queue("q", max_in_flight=1),))
    catalog = ProfileCatalog.build(PROFILES, "default", {})
    policy = SubmissionPolicy(frozenset({"default", "ml"}), catalog, queues=queues.names)
    dispatch = DispatchTasks(repo, runner, clock, fence, policy=policy, queues=queues, queue_states=MemoryQueueStates())
    return repo, dispatch, SyncTasks(repo, runner, clock, fence)


def test_a_profiles_kueue_creates_suspended_jobs_with_its_labels_and_kueue_owns_their_admission(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    server.set_controller("timed", active_after_ms=0, complete_after_ms=300, pods=True)
    repo, dispatch, sync = profile_world(api)
    info = json.dumps({"image": "alpine", "command": ["sleep", "1"], "profile": "batch"})
    first = repo.add(NewTask("first", "ml", info), SystemClock().now())
    second = repo.add(NewTask("second", "ml", info), SystemClock().now())

    assert dispatch().launched == 1
    body = server.created_bodies()[0]
    assert body["spec"]["suspend"] is True
    labels = body["metadata"]["labels"]
    assert labels["kueue.x-k8s.io/queue-name"] == "batch-q"
    assert labels["kueue.x-k8s.io/priority-class"] == "batch-high"
    assert "nightwatch.io/kueue-counted" not in labels

    def message_is(task_id: int, wanted: str) -> bool:
        sync()
        return repo.get(task_id).message == wanted  # type: ignore[arg-type, union-attr]

    queued = "Queued by Kueue: JobSuspended: Job suspended"
    wait_until(lambda: message_is(first.id, queued), 5, interval=0.05, what=queued)
    assert repo.get(first.id).status is TaskStatus.PENDING  # type: ignore[union-attr]
    assert dispatch().launched == 1  # Kueue owns admission: the held Job frees nightwatch's slot
    for _ in range(3):
        sync()
        dispatch()
    assert server.job("ml", "first")["spec"]["suspend"] is True  # never unsuspended by nightwatch
    assert not [r for r in server.requests if r.method == "PATCH" and "suspend" in json.dumps(r.body)]

    client.BatchV1Api(api).patch_namespaced_job("first", "ml", {"spec": {"suspend": False}})  # Kueue admits it

    def succeeded() -> bool:
        sync()
        return repo.get(first.id).status is TaskStatus.SUCCEEDED  # type: ignore[union-attr]

    wait_until(succeeded, 10, interval=0.05, what="Succeeded after admission")
    assert repo.get(second.id).status is TaskStatus.PENDING  # type: ignore[union-attr]


@pytest.mark.parametrize("watch", [False, True], ids=["polling", "informer"])
def test_a_profile_whose_kueue_does_not_own_admission_keeps_the_held_job_counted(
    kube: tuple[FakeKubeServer, client.ApiClient], watch: bool
) -> None:
    """With the informer too: its cache keeps the counted label, or the task would read Queued."""
    server, api = kube
    server.set_controller("timed", active_after_ms=0, complete_after_ms=300, pods=True)
    repo, dispatch, sync = profile_world(api, watch=watch)
    info = json.dumps({"image": "alpine", "profile": "shared"})
    first = repo.add(NewTask("first", "default", info), SystemClock().now())
    second = repo.add(NewTask("second", "default", info), SystemClock().now())

    assert dispatch().launched == 1
    labels = server.created_bodies()[0]["metadata"]["labels"]
    assert labels["kueue.x-k8s.io/queue-name"] == "shared-q"
    assert labels["nightwatch.io/kueue-counted"] == "true"
    assert "kueue.x-k8s.io/priority-class" not in labels

    def waiting() -> bool:
        sync()
        return repo.get(first.id).message == "Waiting for Kueue: JobSuspended: Job suspended"  # type: ignore[union-attr]

    wait_until(waiting, 5, interval=0.05, what="Waiting for Kueue")
    for _ in range(3):
        assert dispatch().launched == 0  # the held Job still holds q's one slot
    assert repo.get(second.id).status is TaskStatus.NORMAL  # type: ignore[union-attr]
    assert server.job("default", "first")["spec"]["suspend"] is True
