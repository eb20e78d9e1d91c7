"""DispatchTasks on the in-memory adapters: Normal rows become Jobs, once each, fenced, bad rows failed alone."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nightwatch.adapters.kubernetes.jobbody import build_job_body
from nightwatch.adapters.memory import FakeClock, FixedFence, MemoryJobRunner, MemoryTaskRepository
from nightwatch.app.metrics import Metrics
from nightwatch.app.usecases.cancel import CancelSettings, CancelTasks
from nightwatch.app.usecases.dispatch import DispatchReport, DispatchSettings, DispatchTasks
from nightwatch.app.usecases.sync import SyncSettings, SyncTasks
from nightwatch.domain.errors import (
    AdmissionDeferred,
    DuplicateTask,
    ForeignJob,
    JobForbidden,
    JobInvalid,
    JobRefused,
    LeadershipLost,
    RetryableError,
)
from nightwatch.domain.jobspec import LaunchRequest
from nightwatch.domain.model import StatusChange, TaskId, TaskStatus
from nightwatch.domain.observation import JobObservation, JobPhase
from nightwatch.domain.ports import LaunchResult, NewTask, WriteResult
from nightwatch.domain.submission import SubmissionPolicy, launch_request_for
from tests.support.hostile import ALLOWED, GOOD_INFO, MEMORY, HostileRow, assert_only_allow_listed, hostile_rows
from tests.unit.app.usecases.world import LosingFence, S, World


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


@pytest.mark.parametrize("refusal", [JobRefused, ForeignJob, JobInvalid, JobForbidden])
def test_every_refusal_fails_the_task_with_its_message(world: World, refusal: type[JobRefused]) -> None:
    task_id = world.insert("refused")
    world.runner.fail_next(refusal("the runner said no"))
    report = world.dispatch()
    assert (report.launched, report.failed, report.deferred) == (0, 1, 0)
    assert world.status(task_id) is S.FAILED and world.repo.get(task_id).message == "the runner said no"


def test_adoption_after_a_crash_between_create_and_write(world: World) -> None:
    task_id = world.insert("crashy")
    # The previous leader created the Job, then died before writing Pending.
    world.runner.launch(launch_request_for(world.repo.get(task_id), world.policy))
    report = world.dispatch()
    assert report.adopted == 1 and report.launched == 0
    assert world.status(task_id) is S.PENDING and len(world.runner.jobs) == 1


def test_a_superseded_epoch_writes_nothing(world: World) -> None:
    task_id = world.insert("fenced")
    world.repo.advance_epoch()  # another replica became leader
    with pytest.raises(LeadershipLost):
        world.dispatch()
    assert world.status(task_id) is S.NORMAL


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


# -- the database going away mid-tick --------------------------------------------------------------
INFO = '{"image":"busybox","command":["true"]}'


class DatabaseGoneAfterReads(MemoryTaskRepository):
    """Reads work (the tick read its batch before the outage); every write fails as a down server does."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def apply(self, changes: Sequence[StatusChange], *, epoch: int) -> WriteResult:
        if self.down:
            raise RetryableError(f"apply {len(changes)} status changes: database unavailable: (2003, refused)")
        return super().apply(changes, epoch=epoch)


class SlowRunner(MemoryJobRunner):
    """A launch takes a millisecond, as an API call does (rather than a few microseconds)."""

    def launch(self, request: LaunchRequest) -> LaunchResult:
        time.sleep(0.001)
        return super().launch(request)


@pytest.mark.outage
def test_a_failed_write_batch_stops_the_launches_of_the_tick() -> None:
    repo, runner, clock = DatabaseGoneAfterReads(), SlowRunner(), FakeClock()
    fence = FixedFence(repo.advance_epoch())
    for i in range(1000):
        repo.add(NewTask(f"t-{i}", "default", INFO, 1), clock.now())
    dispatch = DispatchTasks(
        repo, runner, clock, fence, DispatchSettings(batch_size=1000, workers=4, write_batch_size=50)
    )
    repo.down = True

    with pytest.raises(RetryableError, match="database unavailable"):
        dispatch()

    # The first write batch (50 launches) fails; what the 4 workers had started by then may finish.
    # Before the fix every one of the 1000 Jobs was created.
    created = len(runner.jobs)
    assert created < 300, f"{created} Jobs created after the database refused the first write"
    assert repo.count_by_status() == {"Normal": 1000}

    # The database is back: the next tick adopts the Jobs created and launches the rest, once each.
    repo.down = False
    report = dispatch()
    assert (report.launched, report.adopted) == (1000 - created, created)
    assert repo.count_by_status() == {str(TaskStatus.PENDING): 1000}
    assert len(runner.jobs) == 1000


# -- a whole tick over hostile rows ---------------------------------------------------------------
_rows = st.lists(hostile_rows(), max_size=12)


@pytest.mark.hostile
@MEMORY
@given(_rows, st.integers(1, 4), st.randoms(use_true_random=False))
def test_a_tick_over_hostile_rows_fails_each_with_a_message_and_leaves_good_rows_alone(
    hostile: list[HostileRow], good_count: int, random: object
) -> None:
    repo, runner, clock = MemoryTaskRepository(), MemoryJobRunner(), FakeClock()
    fence = FixedFence(repo.advance_epoch())
    # Small batches, so paging past bad rows is exercised.
    dispatch = DispatchTasks(
        repo, runner, clock, fence, DispatchSettings(batch_size=3, workers=2), policy=SubmissionPolicy(ALLOWED)
    )
    sync = SyncTasks(repo, runner, clock, fence, SyncSettings(page_size=3, write_batch_size=2))
    cancel = CancelTasks(repo, runner, clock, fence, CancelSettings(batch_size=3))

    # The memory store holds only known statuses: a row's status and later status are SQL-level
    # hostility, covered by the SQL tests; here every row is Normal (and maybe being cancelled).
    good = [HostileRow(f"good-{i}", "default", GOOD_INFO, "Normal") for i in range(good_count)]
    entries = [("good", row) for row in good] + [
        ("hostile", row) for row in hostile if not row.name.startswith("good-")
    ]
    random.shuffle(entries)  # type: ignore[attr-defined]
    kinds: dict[TaskId, str] = {}
    for kind, row in entries:
        try:
            # NewTask is what plain SQL would write: no validation, `info` may even be NULL.
            task = repo.add(NewTask(row.name, row.namespace, row.info, 1), clock.now())  # type: ignore[arg-type]
        except DuplicateTask:
            continue
        if row.cancel_requested:
            repo.request_cancel(task.id)
        kinds[task.id] = kind

    for _ in range(2):
        dispatch()
        for job in list(runner.jobs.values()):
            assert job.spec is not None
            assert_only_allow_listed(
                build_job_body(LaunchRequest(job.task_id or TaskId(0), job.name, job.namespace, job.spec))
            )
            runner.set_observation(job.namespace, job.name, JobObservation(JobPhase.SUCCEEDED, "Completed", "ok"))
        sync()
        cancel()

    for task_id, kind in kinds.items():
        task = repo.get(task_id)
        if kind == "good":
            assert task.status is TaskStatus.SUCCEEDED, task
        else:
            assert task.status in (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED), task
            if task.status is TaskStatus.FAILED:
                assert task.message.strip(), task


class QuotaRunner(MemoryJobRunner):
    """Defers every launch in the namespaces of `full` (a ResourceQuota with no room) and counts the tries."""

    def __init__(self) -> None:
        super().__init__()
        self.full: dict[str, str] = {}
        self.tries: list[str] = []

    def launch(self, request):  # type: ignore[no-untyped-def]
        self.tries.append(request.namespace)
        reason = self.full.get(request.namespace)
        if reason is not None:
            raise AdmissionDeferred(
                f"exceeded quota in {request.namespace}", namespace=request.namespace, reason=reason
            )
        return super().launch(request)


def quota_world() -> tuple[World, QuotaRunner]:
    world = World()
    runner = QuotaRunner()
    world.runner = runner
    world.dispatch = DispatchTasks(
        world.repo, runner, world.clock, world.fence, DispatchSettings(workers=1), policy=world.policy
    )
    return world, runner


def test_a_deferred_launch_leaves_tasks_normal_logged_once_and_retried_with_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world, runner = quota_world()
    runner.full["default"] = AdmissionDeferred.QUOTA
    stuck = [world.insert(f"q-{i}") for i in range(5)]
    elsewhere = world.insert("free", namespace="demo")
    with caplog.at_level(logging.DEBUG, logger="nightwatch.app.usecases.dispatch"):
        first = world.dispatch()
        assert first.launched == 1 and first.deferred == 5 and first.deferred_by_reason == {"quota": 5}
        assert world.status(elsewhere) is S.PENDING and all(world.status(t) is S.NORMAL for t in stuck)
        tries = len(runner.tries)
        # Within the backoff nothing in the namespace is tried: deferred without an API call.
        world.clock.advance(1)
        assert world.dispatch().deferred_by_reason == {"quota": 5} and len(runner.tries) == tries
        # Once it has passed, one task probes; the backoff doubles when it is deferred again.
        world.clock.advance(1.5)
        world.dispatch()
        assert len(runner.tries) == tries + 1
        world.clock.advance(3)
        world.dispatch()
        assert len(runner.tries) == tries + 1
        world.clock.advance(2)
        world.dispatch()
        assert len(runner.tries) == tries + 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "namespace default are deferred (quota)" in warnings[0]
    assert "tasks there stay Normal" in warnings[0]
    # The quota frees: the next probe launches, the outage ends (logged), and the rest follow.
    runner.full.clear()
    world.clock.advance(60)
    with caplog.at_level(logging.INFO, logger="nightwatch.app.usecases.dispatch"):
        assert world.dispatch().launched >= 1
    assert any("launches in namespace default resume" in r.getMessage() for r in caplog.records)
    world.dispatch()
    assert all(world.status(t) is S.PENDING for t in stuck)


def test_a_namespace_not_ready_defers_with_its_own_reason_and_an_outage_per_namespace() -> None:
    world, runner = quota_world()
    runner.full = {"default": AdmissionDeferred.NOT_READY, "demo": AdmissionDeferred.QUOTA}
    world.insert("a")
    world.insert("b", namespace="demo")
    report = world.dispatch()
    assert report.deferred_by_reason == {"not-ready": 1, "quota": 1} and report.failed == 0


def test_deferrals_are_counted_by_reason_in_the_metrics() -> None:
    metrics = Metrics()
    metrics.record_report("dispatch", DispatchReport(deferred=3, deferred_by_reason={"quota": 2, "api": 1}))
    assert metrics.registry.get_sample_value("nightwatch_launch_deferred_total", {"reason": "quota"}) == 2
    assert metrics.registry.get_sample_value("nightwatch_launch_deferred_total", {"reason": "api"}) == 1


# -- not-before times (run_at, a retry's backoff) --------------------------------------------------------
def test_a_task_with_a_run_at_waits_for_it_and_then_launches(world: World) -> None:
    at = world.clock.now() + timedelta(minutes=10)
    later = world.repo.add(NewTask("later", "default", GOOD_INFO, 1, run_at=at), world.clock.now()).id
    now = world.insert("now")
    report = world.dispatch()
    assert (report.launched, report.postponed) == (1, 0)
    assert world.status(now) is S.PENDING and world.status(later) is S.NORMAL
    world.clock.advance(600)
    assert world.dispatch().launched == 1 and world.status(later) is S.PENDING


def test_a_run_at_written_by_hand_is_postponed_once_and_then_not_read_until_due(world: World) -> None:
    task_id = world.insert("by-hand")
    row = world.repo._rows[task_id]
    row.run_at = world.clock.now() + timedelta(seconds=30)  # as `UPDATE task SET run_at = ...` would
    assert world.dispatch().postponed == 1
    assert world.repo.get(task_id).next_attempt_at == row.run_at and world.status(task_id) is S.NORMAL
    version = world.repo.get(task_id).version
    assert world.dispatch().postponed == 0 and world.repo.get(task_id).version == version
    world.clock.advance(30)
    assert world.dispatch().launched == 1 and world.status(task_id) is S.PENDING


def test_tasks_come_due_before_the_ready_backlog_and_each_starts_once(world: World) -> None:
    epoch = world.fence.epoch()
    due = [world.insert(f"due-{i}") for i in range(3)]
    world.repo.apply([world.repo.get(i).postpone(world.clock.now(), world.clock.now()) for i in due], epoch=epoch)
    ready = [world.insert(f"ready-{i}") for i in range(3)]
    assert world.dispatch().launched == 6
    assert all(world.status(i) is S.PENDING for i in due + ready)
    assert world.runner.calls["launch"] == 6
