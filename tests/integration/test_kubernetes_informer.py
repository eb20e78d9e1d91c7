"""The Job informer over the wire: the fake's watch semantics, and the runner's change feed on them.

The fake is checked first (every event shape, as a raw HTTP client sees it), then the informer:
list once and watch, resume after a cut without losing a change, relist after 410 Gone without a
duplicate write, stop at once on step-down, and never write what it heard in an earlier term.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from nightwatch.adapters.kubernetes import KubernetesJobRunner, KubernetesSettings
from nightwatch.adapters.kubernetes.informer import NamespaceInformer
from nightwatch.adapters.memory import MemoryTaskRepository
from nightwatch.app.usecases.sync import RetrySettings, SyncSettings, SyncTasks
from nightwatch.domain.errors import LeadershipLost
from nightwatch.domain.jobspec import JobSpec, LaunchRequest
from nightwatch.domain.model import TaskId, TaskStatus
from nightwatch.domain.observation import JobPhase
from nightwatch.domain.ports import NewTask
from nightwatch.domain.retries import RetrySpec
from tests.fakekube.fixtures import running_fake_kube
from tests.fakekube.server import FakeKubeServer

SELECTOR = "app.kubernetes.io/managed-by=nightwatch"
JOBS = "/apis/batch/v1/namespaces/default/jobs"


@pytest.fixture
def kube() -> Iterator[tuple[FakeKubeServer, client.ApiClient]]:
    with running_fake_kube() as pair:
        yield pair


def runner_for(api: client.ApiClient, **settings: Any) -> KubernetesJobRunner:
    return KubernetesJobRunner(api, KubernetesSettings(qps=0, **{"watch": True, **settings}), sleep=lambda _: None)


def job_body(task_id: int, name: str | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name or f"task-{task_id}",
            "labels": {"app.kubernetes.io/managed-by": "nightwatch", "nightwatch.io/task-id": str(task_id)},
        },
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "t", "image": "alpine"}]}}},
    }


def watch_lines(fake: FakeKubeServer, query: str, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The first `count` events of a raw watch (fewer if the stream ends first)."""
    url = f"{fake.url}{JOBS}?watch=true&labelSelector={SELECTOR}&{query}"
    events: list[dict[str, Any]] = []
    with urllib.request.urlopen(url, timeout=timeout) as response:
        assert response.headers["Transfer-Encoding"] == "chunked"
        for line in response:
            events.append(json.loads(line))
            if len(events) >= count:
                break
    return events


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


# -- the fake's watch ---------------------------------------------------------------------------------
def test_the_fake_serves_every_event_shape(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    fake, _ = kube
    fake.store.create_job("default", job_body(1))
    listed = fake.store.list_jobs("default", SELECTOR, 0, None)
    version = listed["metadata"]["resourceVersion"]
    assert listed["items"][0]["metadata"]["resourceVersion"] == version
    fake.store.create_job("default", job_body(2))
    fake.set_job_state("default", "task-2", "succeeded")
    fake.store.watch.bookmark_seconds = 0.2
    fake.store.jobs[("default", "task-2")]["metadata"].pop("finalizers", None)
    fake.delete_job("default", "task-2")
    events = watch_lines(fake, f"resourceVersion={version}&allowWatchBookmarks=true&timeoutSeconds=5", 4)
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]
    assert [e["object"]["metadata"]["name"] for e in events[:3]] == ["task-2"] * 3
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions) and versions[0] > int(version)
    assert set(events[3]["object"]["metadata"]) == {"resourceVersion"}
    # No resourceVersion: the current objects as ADDED first.
    assert [e["type"] for e in watch_lines(fake, "timeoutSeconds=1", 1)] == ["ADDED"]
    # A version older than the watch history: one ERROR event, a Status 410 "too old resource version".
    fake.compact_watch()
    gone = watch_lines(fake, f"resourceVersion={version}", 5)
    assert len(gone) == 1 and gone[0]["type"] == "ERROR"
    assert gone[0]["object"]["code"] == 410 and "too old resource version" in gone[0]["object"]["message"]


def test_the_fake_ends_a_watch_at_its_timeout_and_on_the_drop_hook(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    fake, _ = kube
    version = fake.store.list_jobs("default", SELECTOR, 0, None)["metadata"]["resourceVersion"]
    started = time.monotonic()
    assert watch_lines(fake, f"resourceVersion={version}&timeoutSeconds=1", 10) == []
    assert 0.9 <= time.monotonic() - started < 3.0
    ended = threading.Event()

    def watch() -> None:
        # A cut stream is an incomplete chunked read: that is the point.
        with contextlib.suppress(Exception):
            watch_lines(fake, f"resourceVersion={version}&timeoutSeconds=30", 10, timeout=30)
        ended.set()

    threading.Thread(target=watch, daemon=True).start()
    wait_for(lambda: fake.store.watch.opened >= 2)
    time.sleep(0.1)
    fake.drop_watches()
    assert ended.wait(3.0)


def test_the_fake_streams_a_held_burst_only_once_every_job_is_set(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    fake, _ = kube
    for i in (1, 2, 3):
        fake.store.create_job("default", job_body(i))
    version = fake.store.list_jobs("default", SELECTOR, 0, None)["metadata"]["resourceVersion"]
    fake.store.hold_watch()
    fake.set_job_state("default", "task-1", "succeeded")
    assert watch_lines(fake, f"resourceVersion={version}&timeoutSeconds=1", 1) == []
    fake.store.watch.release()
    assert [e["object"]["metadata"]["name"] for e in watch_lines(fake, f"resourceVersion={version}", 1)] == ["task-1"]
    # The control endpoint a benchmark uses: every Job set, then every event at once.
    status, answer = fake.control("POST", "/_fake/jobs/state", {"state": "failed", "at_once": True})
    assert status == 200 and answer["jobs"] == 3 and answer["released_wall"] <= time.time()
    events = watch_lines(fake, f"resourceVersion={version}&timeoutSeconds=5", 4)
    assert [e["type"] for e in events] == ["MODIFIED"] * 4
    assert fake.store.watch.held_after is None


# -- the informer ----------------------------------------------------------------------------------------
def test_the_informer_lists_once_then_follows_changes_from_its_cache(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    fake, api = kube
    runner = runner_for(api)
    try:
        for task_id in (1, 2, 3):
            runner.launch(LaunchRequest(TaskId(task_id), f"task-{task_id}", "default", JobSpec(image="alpine")))
        woken = threading.Event()
        runner.follow({"default"}, woken.set)
        assert woken.wait(5.0)  # the launches queued their tasks already
        informer = runner.informers.informer("default")
        assert informer is not None and informer.wait_synced(5.0)
        wait_for(lambda: runner.take_changes() >= {TaskId(1), TaskId(2), TaskId(3)} or True)
        fake.reset_counters()
        fake.set_job_state("default", "task-1", "succeeded")
        fake.set_job_state("default", "task-2", "active")
        changed: set[TaskId] = set()
        wait_for(lambda: changed.update(runner.take_changes()) or changed >= {TaskId(1), TaskId(2)})
        observations = runner.observe(
            [runner_ref(1), runner_ref(2), runner_ref(9, name="task-9")],
        )
        assert observations[TaskId(1)].phase is JobPhase.SUCCEEDED
        assert observations[TaskId(2)].phase is JobPhase.ACTIVE
        assert observations[TaskId(9)].phase is JobPhase.MISSING
        assert fake.counters.get("list", 0) == 0  # read from the cache: no list (task-9's one GET says 404)
        # A Job deleted behind our back: DELETED, so its task is queued and observed missing.
        fake.store.jobs[("default", "task-3")]["metadata"].pop("finalizers", None)
        fake.delete_job("default", "task-3")
        changed.clear()
        wait_for(lambda: changed.update(runner.take_changes()) or TaskId(3) in changed)
        assert runner.observe([runner_ref(3)])[TaskId(3)].phase is JobPhase.MISSING
        informer = runner.informers.informer("default")
        assert informer is not None and informer.lists == 1
    finally:
        runner.close()


def runner_ref(task_id: int, name: str | None = None) -> Any:
    from nightwatch.domain.ports import JobRef

    return JobRef(TaskId(task_id), "default", name or f"task-{task_id}")


def test_no_change_is_lost_when_streams_are_cut_while_1000_jobs_change(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    fake, api = kube
    fake.control("POST", "/_fake/jobs", {"namespace": "default", "jobs": [job_body(i) for i in range(1, 1001)]})
    runner = runner_for(api, watch_recheck_seconds=3600)  # only events can queue a task here
    try:
        runner.follow({"default"}, lambda: None)
        informer = runner.informers.informer("default")
        assert informer is not None and informer.wait_synced(10.0)
        runner.take_changes()
        changed: set[TaskId] = set()
        for i in range(1, 1001):
            fake.set_job_state("default", f"task-{i}", "succeeded")
            if i % 250 == 0:
                wait_for(lambda: informer._response is not None)  # a live stream to cut
                fake.drop_watches()  # every open stream, at once
            if i % 300 == 0:
                fake.cut_next_watch_events(1)  # the next event goes out half-written
            if i % 100 == 0:
                changed |= runner.take_changes()

        def all_seen() -> bool:
            changed.update(runner.take_changes())
            return len(changed) == 1000

        wait_for(all_seen, timeout=30.0)

        def all_cached() -> bool:
            cache = runner.informers.snapshot("default") or {}
            return len(cache) == 1000 and all(job["status"].get("succeeded") == 1 for job in cache.values())

        wait_for(all_cached, timeout=30.0)
        assert informer.watches >= 3 and informer.lists == 1  # resumed after the cuts, never relisted
    finally:
        runner.close()


class Fence:
    def __init__(self, epoch: int) -> None:
        self.current: int | None = epoch

    def epoch(self) -> int:
        if self.current is None:
            raise LeadershipLost("not the leader")
        return self.current


def dispatched(
    repo: MemoryTaskRepository, runner: KubernetesJobRunner, count: int, epoch: int, *, prefix: str = "job"
) -> list[TaskId]:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    ids = []
    for i in range(count):
        task = repo.add(NewTask(f"{prefix}-{i}", "default", '{"image": "alpine"}'), now)
        repo.apply([task.start(task.name, now)], epoch=epoch)
        runner.launch(LaunchRequest(task.id, task.name, "default", JobSpec(image="alpine")))
        ids.append(task.id)
    return ids


def test_a_relist_after_410_reports_what_was_missed_and_writes_it_once(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    fake, api = kube
    repo = MemoryTaskRepository()
    epoch = repo.advance_epoch()
    runner = runner_for(api)
    fence = Fence(epoch)
    from nightwatch.adapters.clock import SystemClock

    sync = SyncTasks(repo, runner, SystemClock(), fence)
    try:
        ids = dispatched(repo, runner, 5, epoch)
        sync()  # the term's full pass: follows "default"
        informer = runner.informers.informer("default")
        assert informer is not None and informer.wait_synced(10.0)
        wait_for(lambda: informer.watches >= 1)
        sync()
        # The watch reconnects too late: its version is compacted away meanwhile, so 410 and a relist.
        fake.inject("500", count=2, verb="watch")
        fake.drop_watches()
        fake.set_job_state("default", "job-1", "succeeded")
        fake.set_job_state("default", "job-2", "failed")
        fake.compact_watch()
        wait_for(lambda: informer.lists == 2)
        batches = repo.write_batches
        wait_for(lambda: sync().changed == 2 or repo.get(ids[1]).status is TaskStatus.SUCCEEDED)
        assert repo.get(ids[1]).status is TaskStatus.SUCCEEDED and repo.get(ids[2]).status is TaskStatus.FAILED
        assert repo.write_batches - batches == 1
        report = sync()
        assert report.changed == 0 and report.lost == 0  # written once: nothing left to write again
    finally:
        runner.close()


def test_a_job_created_while_the_watch_is_down_is_not_called_missing(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    """The cache lacks a Job it did not see created while its watch was down (an outage, then its
    backoff): created by a leader before a crash, or by a create whose answer never came back. Each is
    read by name before its task is failed as missing (seen: 392 tasks JobMissing after a 30 s window
    of 500s, before this replica's own creates were put in its cache)."""
    from datetime import UTC, datetime

    from nightwatch.adapters.clock import SystemClock

    fake, api = kube
    repo = MemoryTaskRepository()
    epoch = repo.advance_epoch()
    runner = runner_for(api)
    sync = SyncTasks(repo, runner, SystemClock(), Fence(epoch))
    try:
        dispatched(repo, runner, 2, epoch)
        sync()  # the term's full pass: follows "default"
        informer = runner.informers.informer("default")
        assert informer is not None and informer.wait_synced(10.0)
        wait_for(lambda: informer.watches >= 1)
        fake.inject("500", seconds=30, verb="watch")
        fake.drop_watches()
        now = datetime.now(UTC)
        late = []
        for i in range(5):
            task = repo.add(NewTask(f"late-{i}", "default", '{"image": "alpine"}'), now)
            repo.apply([task.start(task.name, now)], epoch=epoch)
            fake.store.create_job("default", job_body(int(task.id), task.name))
            late.append(task.id)
        runner.informers.queue.add(set(late))  # as the term's full pass or a launch queues them
        fake.set_job_state("default", "late-0", "succeeded")
        assert all(f"late-{i}" not in (informer.snapshot() or {}) for i in range(5))  # the cache is behind
        sync()
        statuses = {repo.get(t).status for t in late[1:]}
        assert statuses == {TaskStatus.PENDING}, [repo.get(t).message for t in late]
        assert repo.get(late[0]).status is TaskStatus.SUCCEEDED  # read by name: its real state
        fake.delete_job("default", "late-1")  # deleted behind our back: missing, as the API server says
        fake.set_job_state("default", "late-2", "active")
        runner.informers.queue.add({late[1], late[2]})
        sync()
        assert repo.get(late[1]).status is TaskStatus.NORMAL  # missing: an infrastructure failure, retried
        assert repo.get(late[2]).status is TaskStatus.RUNNING
    finally:
        runner.close()


def test_a_launched_job_is_in_the_cache_at_once_so_sync_reads_nothing_for_it(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    from nightwatch.adapters.clock import SystemClock

    fake, api = kube
    repo = MemoryTaskRepository()
    epoch = repo.advance_epoch()
    runner = runner_for(api)
    sync = SyncTasks(repo, runner, SystemClock(), Fence(epoch))
    try:
        dispatched(repo, runner, 1, epoch)
        sync()  # the term's full pass: follows "default"
        informer = runner.informers.informer("default")
        assert informer is not None and informer.wait_synced(10.0)
        fake.drop_watches()
        fake.inject("delay", verb="watch", seconds=5, delay_seconds=3)  # its ADDED events come late
        wait_for(lambda: informer.watches >= 1)
        fake.reset_counters()
        ids = dispatched(repo, runner, 20, epoch, prefix="more")
        sync()
        assert {repo.get(t).status for t in ids} == {TaskStatus.PENDING}
        assert fake.counters.get("get", 0) == 0  # no Job read by name: the launch cached them
    finally:
        runner.close()


@contextlib.contextmanager
def following_default(
    api: client.ApiClient,
) -> Iterator[tuple[MemoryTaskRepository, KubernetesJobRunner, int, TaskId, NamespaceInformer]]:
    """A leader that dispatched one task and ran its term's full pass, so it follows "default" (the
    informer has listed and is watching): repository, runner, epoch, that task, the informer."""
    from nightwatch.adapters.clock import SystemClock

    repo = MemoryTaskRepository()
    epoch = repo.advance_epoch()
    runner = runner_for(api)
    try:
        (first,) = dispatched(repo, runner, 1, epoch)
        SyncTasks(repo, runner, SystemClock(), Fence(epoch))()
        informer = runner.informers.informer("default")
        assert informer is not None and informer.wait_synced(10.0)
        wait_for(lambda: informer.watches >= 1)
        runner.take_changes()
        yield repo, runner, epoch, first, informer
    finally:
        runner.close()


def test_a_launch_queues_nothing_and_an_adoption_queues_its_task(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    """A Job just created is in the cache from the body sent and its own events queue its task; an
    adopted one (made before a crash) may have finished long ago and send no event again."""
    fake, api = kube
    with following_default(api) as (repo, runner, epoch, first, informer):
        fake.drop_watches()
        fake.inject("delay", verb="watch", seconds=5, delay_seconds=3)  # no event arrives meanwhile
        wait_for(lambda: informer.watches >= 1)
        launched = dispatched(repo, runner, 5, epoch, prefix="fresh")
        assert runner.take_changes() == set()  # sync reads back none of the rows dispatch just wrote
        again = runner.launch(LaunchRequest(first, "job-0", "default", JobSpec(image="alpine")))
        assert again.adopted and runner.take_changes() == {first}
        assert all(t not in runner.take_changes() for t in launched)


def test_a_job_is_assumed_before_its_create_and_forgotten_when_the_create_is_refused(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    """Assumed before the create (its ADDED event often beats the answer, and would queue the task for
    sync to read back), and dropped when the API server refuses it: no phantom Job in the cache."""
    from nightwatch.domain.errors import JobRefused

    fake, api = kube
    with following_default(api) as (repo, runner, epoch, _first, informer):
        wait_for(lambda: runner.take_changes() == set())
        seen: list[bool] = []
        create_job = runner._api.create_job

        def create_seeing_the_cache(namespace: str, body: Any, **kwargs: Any) -> Any:
            seen.append(body["metadata"]["name"] in (informer.snapshot() or {}))
            return create_job(namespace, body, **kwargs)

        runner._api.create_job = create_seeing_the_cache  # type: ignore[method-assign]
        launched = dispatched(repo, runner, 3, epoch, prefix="early")
        assert seen == [True, True, True]
        wait_for(lambda: all(j["metadata"].get("uid") for n, j in (informer.snapshot() or {}).items() if "early" in n))
        assert not runner.take_changes() & set(launched)  # their ADDED events were no news
        fake.inject(400, verb="create")
        with pytest.raises(JobRefused):
            runner.launch(LaunchRequest(TaskId(99), "refused", "default", JobSpec(image="alpine")))
        assert "refused" not in (informer.snapshot() or {})


def test_step_down_stops_the_watch_and_a_new_term_never_writes_what_the_old_one_heard(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    fake, api = kube
    repo = MemoryTaskRepository()
    epoch = repo.advance_epoch()
    runner = runner_for(api)
    fence = Fence(epoch)
    from nightwatch.adapters.clock import SystemClock

    sync = SyncTasks(repo, runner, SystemClock(), fence, SyncSettings(resync_seconds=3600))
    try:
        ids = dispatched(repo, runner, 3, epoch)
        sync()
        informer = runner.informers.informer("default")
        assert informer is not None and informer.wait_synced(10.0)
        wait_for(lambda: informer.watches >= 1)
        sync()
        # Heard while leading, then the lease is lost before the tick that would write it.
        fake.set_job_state("default", "job-0", "succeeded")
        wait_for(lambda: informer.resource_version is not None and TaskId(ids[0]) in runner.informers.queue._ids)
        fence.current = None
        sync.step_down()
        informer.join(3.0)
        assert not informer._thread.is_alive()  # the stream was cut under the reading thread
        assert runner.informers.informer("default") is None
        with pytest.raises(LeadershipLost):
            sync()
        assert repo.get(ids[0]).status is TaskStatus.PENDING
        # Another replica's term changes the row by hand; ours comes back with a new epoch: its first
        # tick is a full pass, which reads the row as it is now, not the event of the old term.
        fence.current = repo.advance_epoch()
        report = sync()
        assert report.full
    finally:
        runner.close()


def test_a_job_waiting_for_a_pod_is_rechecked_without_events_and_its_start_timeout_fires(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    """Time, not an event, ends a wait: the feed re-delivers the Jobs still waiting every
    `watch_recheck_seconds`, so the start timeout deletes the Job and fails the task."""
    fake, api = kube
    repo = MemoryTaskRepository()
    epoch = repo.advance_epoch()
    runner = runner_for(api, start_timeout_seconds=1, watch_recheck_seconds=0.2)
    from nightwatch.adapters.clock import SystemClock

    # No retry: a start timeout is an infrastructure failure, which retries by default (docs/retries.md).
    no_retry = RetrySettings(default=RetrySpec(infrastructure_attempts=0))
    sync = SyncTasks(repo, runner, SystemClock(), Fence(epoch), retry=no_retry)
    try:
        (task_id,) = dispatched(repo, runner, 1, epoch)
        sync()
        informer = runner.informers.informer("default")
        assert informer is not None and informer.wait_synced(10.0)

        def failed() -> bool:
            sync()
            return repo.get(task_id).status is TaskStatus.FAILED

        wait_for(failed, timeout=15.0)
        assert "StartTimeout" in repo.get(task_id).message
        assert ("default", "job-0") not in fake.store.jobs or fake.store.jobs[("default", "job-0")]["metadata"].get(
            "deletionTimestamp"
        )
    finally:
        runner.close()


def test_a_forbidden_watch_falls_back_to_relisting_so_the_cache_never_goes_stale(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    fake, api = kube
    fake.inject("403", verb="watch", seconds=60)  # RBAC with list but without watch
    runner = runner_for(api)
    try:
        runner.launch(LaunchRequest(TaskId(1), "task-1", "default", JobSpec(image="alpine")))
        runner.follow({"default"}, lambda: None)
        informer = runner.informers.informer("default")
        assert informer is not None and informer.wait_synced(10.0)
        runner.take_changes()
        fake.set_job_state("default", "task-1", "succeeded")
        changed: set[TaskId] = set()
        wait_for(lambda: changed.update(runner.take_changes()) or TaskId(1) in changed, timeout=10.0)
        assert runner.observe([runner_ref(1)])[TaskId(1)].phase is JobPhase.SUCCEEDED
        assert informer.lists >= 2
    finally:
        runner.close()
