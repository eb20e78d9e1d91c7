"""Whole task lives through the use cases on the shipped in-memory adapters."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence

import pytest

from nightwatch.adapters.memory import FakeClock, MemoryJobRunner, MemoryTaskRepository
from nightwatch.app.usecases.cancel import CancelTasks, RequestCancel
from nightwatch.app.usecases.common import FixedFence
from nightwatch.app.usecases.dispatch import DispatchSettings, DispatchTasks
from nightwatch.app.usecases.submit import SubmitTask
from nightwatch.app.usecases.sync import SyncTasks
from nightwatch.domain.errors import (
    DuplicateTask,
    InvalidTaskSpec,
    InvalidTransition,
    LeadershipLost,
    RetryableError,
)
from nightwatch.domain.jobspec import LaunchRequest
from nightwatch.domain.model import StatusChange, TaskId, TaskStatus
from nightwatch.domain.observation import JobObservation, JobPhase
from nightwatch.domain.ports import LaunchResult, NewTask, WriteResult

S = TaskStatus
SAMPLE_1 = '{"image":"alpine","command":["sleep"],"args":["60"]}'
SAMPLE_2 = '{"image":"busybox","command":["sleep"],"args":["3600"]}'


class World:
    def __init__(self, batch_size: int = 500, namespaces: frozenset[str] = frozenset({"default", "demo"})) -> None:
        self.repo = MemoryTaskRepository()
        self.runner = MemoryJobRunner()
        self.clock = FakeClock()
        self.fence = FixedFence(self.repo.advance_epoch())
        settings = DispatchSettings(allowed_namespaces=namespaces, batch_size=batch_size, workers=4)
        self.submit = SubmitTask(self.repo, self.clock, namespaces)
        self.dispatch = DispatchTasks(self.repo, self.runner, self.clock, self.fence, settings)
        self.sync = SyncTasks(self.repo, self.runner, self.clock, self.fence)
        self.cancel = CancelTasks(self.repo, self.runner, self.clock, self.fence)
        self.request_cancel = RequestCancel(self.repo)

    def insert(self, name: str, namespace: str = "default", info: str = SAMPLE_1) -> TaskId:
        """A row as plain SQL would write it: no validation on the way in."""
        return self.repo.add(NewTask(name, namespace, info, 1), self.clock.now()).id

    def status(self, task_id: TaskId) -> TaskStatus:
        return self.repo.get(task_id).status


@pytest.fixture
def world() -> World:
    return World()


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
    assert failed.status is S.FAILED and failed.message == "DeadlineExceeded: Job was active too long"
    assert failed.finished_at is not None and failed.job_name == "demo-task-2"

    # Terminal tasks are never scanned again: nothing to observe, nothing written.
    batches = world.repo.write_batches
    assert world.sync().observed == 0 and world.dispatch().launched == 0
    assert world.repo.write_batches == batches


def test_a_thousand_tasks_with_every_tenth_broken_in_one_tick() -> None:
    world = World(batch_size=1000)
    broken = {}
    for i in range(1000):
        if i % 10 == 0:
            broken[world.insert(f"task-{i}", info='{"command":["true"]}')] = "image: Field required"
        else:
            world.insert(f"task-{i}")
    report = world.dispatch()
    assert (report.launched, report.failed) == (900, 100)
    assert len(world.runner.jobs) == 900
    counts = world.repo.count_by_status()
    assert counts == {"Pending": 900, "Failed": 100}
    for task_id, message in broken.items():
        assert message in world.repo.get(task_id).message


def test_dispatch_reads_in_batches_and_drains_the_backlog_in_one_tick() -> None:
    world = World(batch_size=7)
    ids = [world.insert(f"t-{i}") for i in range(30)]
    assert world.dispatch().launched == 30
    assert all(world.status(i) is S.PENDING for i in ids)


def test_invalid_name_and_namespace_fail_only_their_own_task(world: World) -> None:
    bad_name = world.insert("Demo_Task")
    bad_ns = world.insert("ok-name", namespace="kube-system")
    good = world.insert("good")
    report = world.dispatch()
    assert report.failed == 2 and report.launched == 1
    assert "not a DNS-1123 label" in world.repo.get(bad_name).message
    assert "namespace 'kube-system' is not allowed" in world.repo.get(bad_ns).message
    assert world.status(good) is S.PENDING


class FlakyOnce(MemoryJobRunner):
    """Answers the first launch of one Job name with a retryable error."""

    def __init__(self, flaky_name: str) -> None:
        super().__init__()
        self.flaky_name = flaky_name

    def launch(self, request):  # type: ignore[no-untyped-def]
        if request.job_name == self.flaky_name:
            self.flaky_name = ""
            raise RetryableError("API server said 503")
        return super().launch(request)


def test_a_foreign_job_fails_the_task_and_a_retryable_error_leaves_it_normal(world: World) -> None:
    world.runner = FlakyOnce("flaky")
    world.dispatch = DispatchTasks(world.repo, world.runner, world.clock, world.fence, DispatchSettings())
    world.runner.add_foreign_job("default", "taken")
    taken = world.insert("taken")
    flaky = world.insert("flaky")
    fine = world.insert("fine")
    report = world.dispatch()
    assert (report.launched, report.failed, report.deferred) == (1, 1, 1)
    assert world.status(fine) is S.PENDING and world.status(flaky) is S.NORMAL
    assert world.repo.get(taken).message == (
        "a Job named taken already exists in default and was not created by nightwatch"
    )
    assert world.dispatch().launched == 1
    assert world.status(flaky) is S.PENDING


def test_adoption_after_a_crash_between_create_and_write(world: World) -> None:
    task_id = world.insert("crashy")
    # The previous leader created the Job, then died before writing Pending.
    from nightwatch.domain.jobspec import launch_request_for

    world.runner.launch(launch_request_for(world.repo.get(task_id), frozenset({"default"})))
    report = world.dispatch()
    assert report.adopted == 1 and report.launched == 0
    assert world.status(task_id) is S.PENDING and len(world.runner.jobs) == 1


def test_cancel_a_normal_task_never_launches_it(world: World) -> None:
    task_id = world.insert("never")
    world.request_cancel(task_id)
    world.dispatch()
    assert world.status(task_id) is S.CANCELLED and world.runner.jobs == {}


def test_cancel_a_running_task_deletes_its_job(world: World) -> None:
    task_id = world.insert("long")
    world.dispatch()
    world.runner.set_observation("default", "long", JobObservation(JobPhase.ACTIVE))
    world.sync()
    world.request_cancel(task_id)
    # Sync leaves a task being cancelled alone, even if its Job looks finished.
    world.runner.set_observation("default", "long", JobObservation(JobPhase.SUCCEEDED))
    assert world.sync().changed == 0
    report = world.cancel()
    assert report.cancelled == 1
    assert world.status(task_id) is S.CANCELLED and world.runner.deleted == [("default", "long")]
    with pytest.raises(InvalidTransition):
        world.request_cancel(task_id)


def test_cancel_retries_when_the_delete_fails(world: World) -> None:
    task_id = world.insert("sticky")
    world.dispatch()
    world.request_cancel(task_id)
    world.runner.fail_next(RetryableError("timeout"))
    assert world.cancel().deferred == 1 and world.status(task_id) is S.PENDING
    assert world.cancel().cancelled == 1 and world.status(task_id) is S.CANCELLED


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
    assert task.status is S.FAILED and "does not exist" in task.message


def test_a_cluster_outage_changes_no_task(world: World) -> None:
    task_id = world.insert("steady")
    world.dispatch()
    world.runner.fail_next(RetryableError("connection refused"))
    with pytest.raises(RetryableError):
        world.sync()
    assert world.status(task_id) is S.PENDING


def test_a_superseded_epoch_writes_nothing(world: World) -> None:
    task_id = world.insert("fenced")
    world.repo.advance_epoch()  # another replica became leader
    with pytest.raises(LeadershipLost):
        world.dispatch()
    assert world.status(task_id) is S.NORMAL


class LosingFence:
    """Holds epoch 1 until `lose()`; then every check raises LeadershipLost."""

    def __init__(self) -> None:
        self.lost = False

    def lose(self) -> None:
        self.lost = True

    def epoch(self) -> int:
        if self.lost:
            raise LeadershipLost("lease lost")
        return 1


class LosesAfterFirstWrite(MemoryTaskRepository):
    def __init__(self, fence: LosingFence) -> None:
        super().__init__()
        self.fence = fence

    def apply(self, changes: Sequence[StatusChange], *, epoch: int) -> WriteResult:
        result = super().apply(changes, epoch=epoch)
        self.fence.lose()
        return result


def test_losing_the_lease_mid_tick_stops_writes() -> None:
    world = World(batch_size=50)
    fence = LosingFence()
    world.repo = LosesAfterFirstWrite(fence)
    world.repo.advance_epoch()
    ids = [world.insert(f"l-{i}") for i in range(200)]
    dispatch = DispatchTasks(
        world.repo, world.runner, world.clock, fence, DispatchSettings(batch_size=50, write_batch_size=50)
    )
    with pytest.raises(LeadershipLost):
        dispatch()
    pending = sum(world.status(i) is S.PENDING for i in ids)
    assert pending == 50  # exactly the one batch written before the loss


class LosesAfterLaunches(MemoryJobRunner):
    def __init__(self, fence: LosingFence, after: int) -> None:
        super().__init__()
        self.fence, self.after, self.calls = fence, after, 0
        self._count = threading.Lock()

    def launch(self, request: LaunchRequest) -> LaunchResult:
        with self._count:
            self.calls += 1
            if self.calls >= self.after:
                self.fence.lose()
        return super().launch(request)


def test_a_leader_that_lost_its_lease_mid_tick_creates_no_more_jobs() -> None:
    """Launches queued in the worker pool re-check the fence: a leader paused past its lease
    (SIGSTOP, a long GC) must not create the rest of its batch when it resumes."""
    world = World()
    fence = LosingFence()
    world.runner = LosesAfterLaunches(fence, after=10)
    for i in range(200):
        world.insert(f"q-{i}")
    dispatch = DispatchTasks(world.repo, world.runner, world.clock, fence, DispatchSettings(workers=4))
    with pytest.raises(LeadershipLost):
        dispatch()
    assert world.runner.calls <= 10 + 3  # at most the launches already past their check
    assert world.repo.count_by_status() == {"Normal": 200}


def test_cancel_racing_with_dispatch_leaves_no_orphan_job(world: World) -> None:
    task_id = world.insert("racy")

    class CancelDuringLaunch(MemoryJobRunner):
        def launch(self, request):  # type: ignore[no-untyped-def]
            result = super().launch(request)
            # The user cancels and the cancel watcher finishes while this Job is being created.
            world.request_cancel(task_id)
            world.cancel()
            return result

    world.runner = CancelDuringLaunch()
    dispatch = DispatchTasks(world.repo, world.runner, world.clock, world.fence, DispatchSettings())
    cancel = CancelTasks(world.repo, world.runner, world.clock, world.fence)
    world.cancel = cancel
    report = dispatch()
    assert report.lost == 1
    assert world.status(task_id) is S.CANCELLED
    assert world.runner.jobs == {}  # the Job created by the losing dispatch was deleted


def test_submit_validates_before_inserting(world: World) -> None:
    task = world.submit("demo-task-1", "default", {"image": "alpine", "command": ["sleep"], "args": ["60"]})
    assert task.status is S.NORMAL and json.loads(task.info)["image"] == "alpine"
    with pytest.raises(DuplicateTask):
        world.submit("demo-task-1", "default", SAMPLE_1)
    for name, ns, info, message in [
        ("Bad_Name", "default", SAMPLE_1, "DNS-1123"),
        ("ok", "kube-system", SAMPLE_1, "not allowed"),
        ("ok", "default", '{"args":["1"]}', "image"),
        ("ok", "default", "{not json", "not valid JSON"),
    ]:
        with pytest.raises(InvalidTaskSpec, match=message):
            world.submit(name, ns, info)
    assert world.repo.count_by_status() == {"Normal": 1}


def test_a_leader_without_its_lease_deletes_no_job(world: World) -> None:
    task_id = world.insert("keep-me")
    world.dispatch()
    world.request_cancel(task_id)
    fence = LosingFence()
    fence.lose()
    cancel = CancelTasks(world.repo, world.runner, world.clock, fence)
    with pytest.raises(LeadershipLost):
        cancel()
    assert world.runner.deleted == [] and world.status(task_id) is S.PENDING
