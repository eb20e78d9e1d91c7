"""SyncTasks with a runner that pushes changes: a full pass per term and per resync, otherwise only the
rows of the Jobs that changed; a term's queued changes never outlive it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime

import pytest

from nightwatch.adapters.memory import FakeClock, MemoryJobRunner, MemoryTaskRepository
from nightwatch.app.usecases.sync import SyncSettings, SyncTasks
from nightwatch.domain.errors import LeadershipLost, RetryableError
from nightwatch.domain.jobspec import JobSpec, LaunchRequest
from nightwatch.domain.model import StatusChange, Task, TaskId, TaskStatus
from nightwatch.domain.observation import JobObservation, JobPhase
from nightwatch.domain.ports import JobRef, NewTask, WriteResult

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class FeedRunner(MemoryJobRunner):
    """The memory runner plus a change feed the test fills by hand, recording what sync asks."""

    def __init__(self) -> None:
        super().__init__()
        self.queued: set[TaskId] = set()
        self.followed: list[set[str]] = []
        self.stops = 0
        self.observed: list[set[TaskId]] = []
        self.wake: Callable[[], None] = lambda: None

    @property
    def follows_changes(self) -> bool:
        return True

    def follow(self, namespaces: Collection[str], wake: Callable[[], None]) -> None:
        self.followed.append(set(namespaces))
        self.wake = wake

    def take_changes(self) -> set[TaskId]:
        ids, self.queued = self.queued, set()
        return ids

    def stop_following(self) -> None:
        self.stops += 1
        self.queued.clear()

    def observe(self, refs: Sequence[JobRef]) -> Mapping[TaskId, JobObservation]:
        self.observed.append({r.task_id for r in refs})
        return super().observe(refs)


class Fence:
    def __init__(self, epoch: int) -> None:
        self.current: int | None = epoch

    def epoch(self) -> int:
        if self.current is None:
            raise LeadershipLost("not the leader")
        return self.current


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def running(repo: MemoryTaskRepository, runner: FeedRunner, count: int, epoch: int) -> list[TaskId]:
    ids = []
    for i in range(count):
        task = repo.add(NewTask(f"t{i}", f"ns{i % 2}", '{"image": "alpine"}'), NOW)
        repo.apply([task.start(task.name, NOW)], epoch=epoch)
        runner.launch(LaunchRequest(task.id, task.name, task.namespace, JobSpec(image="alpine")))
        ids.append(task.id)
    return ids


def heard_before_pending(repo: MemoryTaskRepository, runner: FeedRunner) -> Task:
    """A task whose Job finished, and whose change was heard, while its row is still Normal (before
    dispatch's Pending write landed)."""
    task = repo.add(NewTask("early", "ns0", '{"image": "alpine"}'), NOW)
    runner.launch(LaunchRequest(task.id, task.name, task.namespace, JobSpec(image="alpine")))
    runner.set_observation("ns0", "early", JobObservation(JobPhase.SUCCEEDED, "Completed", "done"))
    runner.queued = {task.id}
    return task


@pytest.fixture
def world() -> tuple[MemoryTaskRepository, FeedRunner, Fence, Clock, SyncTasks]:
    repo, runner, clock = MemoryTaskRepository(), FeedRunner(), Clock()
    fence = Fence(repo.advance_epoch())
    sync = SyncTasks(
        repo, runner, FakeClock(NOW), fence, SyncSettings(resync_seconds=600), monotonic=clock, sleep=lambda _: None
    )
    return repo, runner, fence, clock, sync


def test_a_term_starts_with_a_full_pass_then_reads_only_changed_rows(world: tuple) -> None:  # type: ignore[type-arg]
    repo, runner, fence, clock, sync = world
    ids = running(repo, runner, 6, fence.epoch())
    first = sync()
    assert first.full and first.observed == 6 and runner.followed == [{"ns0", "ns1"}]
    assert sync().observed == 0  # nothing changed: no row read, nothing observed
    runner.set_observation("ns0", "t0", JobObservation(JobPhase.SUCCEEDED, "Completed", "done"))
    runner.set_observation("ns1", "t1", JobObservation(JobPhase.ACTIVE))
    runner.queued = {ids[0], ids[1], TaskId(999)}  # an id with no row is simply not there
    report = sync()
    assert not report.full and report.observed == 2 and report.changed == 2
    assert runner.observed[-1] == {ids[0], ids[1]}
    assert repo.get(ids[0]).status is TaskStatus.SUCCEEDED and repo.get(ids[1]).status is TaskStatus.RUNNING
    # A terminal row is not in flight: its Job's later events (release, TTL deletion) read nothing.
    runner.queued = {ids[0]}
    assert sync().observed == 0
    clock.now += 601  # the resync: every in-flight row once more
    assert sync().full and runner.observed[-1] == set(ids[1:])


def test_changes_heard_in_an_old_term_are_never_written(world: tuple) -> None:  # type: ignore[type-arg]
    repo, runner, fence, _clock, sync = world
    ids = running(repo, runner, 2, fence.epoch())
    sync()
    runner.set_observation("ns0", "t0", JobObservation(JobPhase.SUCCEEDED, "Completed", "done"))
    runner.queued = {ids[0]}
    fence.current = None  # the lease is lost before the tick that would write it
    sync.step_down()
    assert runner.stops >= 1 and runner.queued == set()
    with pytest.raises(LeadershipLost):
        sync()
    # Leadership comes back under a new epoch: the queue of the old term is dropped, a full pass reads
    # the rows as they are now.
    runner.queued = {ids[1]}  # e.g. heard between the step-down and the new term
    fence.current = repo.advance_epoch()
    stops = runner.stops
    report = sync()
    assert runner.stops == stops + 1 and report.full
    assert repo.get(ids[0]).status is TaskStatus.SUCCEEDED  # the full pass observed it afresh


def test_a_write_under_a_later_epoch_than_the_changes_is_refused(world: tuple) -> None:  # type: ignore[type-arg]
    repo, runner, fence, _clock, sync = world
    ids = running(repo, runner, 1, fence.epoch())
    sync()
    runner.set_observation("ns0", "t0", JobObservation(JobPhase.SUCCEEDED, "Completed", "done"))
    runner.queued = {ids[0]}
    observe = runner.observe

    def observe_then_lose(refs: Sequence[JobRef]) -> Mapping[TaskId, JobObservation]:
        result = observe(refs)
        fence.current = repo.advance_epoch()  # lost and won again while this tick was observing
        return result

    runner.observe = observe_then_lose  # type: ignore[method-assign]
    with pytest.raises(LeadershipLost):
        sync()
    assert repo.get(ids[0]).status is TaskStatus.PENDING


def test_more_changes_than_one_tick_takes_ask_for_another_tick() -> None:
    repo, runner = MemoryTaskRepository(), FeedRunner()
    fence = Fence(repo.advance_epoch())
    woken: list[int] = []
    sync = SyncTasks(
        repo,
        runner,
        FakeClock(NOW),
        fence,
        SyncSettings(max_rounds_per_tick=2, batch_window_seconds=0),
        wake=lambda: woken.append(1),
    )
    ids = running(repo, runner, 1, fence.epoch())
    sync()
    original = runner.take_changes
    runner.take_changes = lambda: {ids[0]} | original()  # type: ignore[method-assign]  # a change every round
    sync()
    assert woken == [1]


def test_a_change_whose_namespace_could_not_be_read_is_not_lost(world: tuple) -> None:  # type: ignore[type-arg]
    """The feed hands a change over once: a namespace unreadable that tick (a 429, an outage) must
    not leave its row waiting for the 600 s resync. Seen in the 429 system test: tasks stuck Pending."""
    repo, runner, fence, _clock, sync = world
    ids = running(repo, runner, 2, fence.epoch())
    sync()
    runner.set_observation("ns0", "t0", JobObservation(JobPhase.SUCCEEDED, "Completed", "done"))
    runner.queued = {ids[0]}
    observe = runner.observe
    runner.observe = lambda refs: {}  # type: ignore[method-assign]  # the namespace answered 429
    assert sync().changed == 0
    runner.observe = observe  # type: ignore[method-assign]
    report = sync()  # nothing queued any more: only a full pass can find it
    assert report.full and repo.get(ids[0]).status is TaskStatus.SUCCEEDED


def test_a_full_pass_that_could_not_observe_a_task_is_followed_by_another(world: tuple) -> None:  # type: ignore[type-arg]
    """A full pass that gets no observation for a task (its Job or pods unreadable in an outage) must
    not leave it for the 600 s resync: it sends no event of its own again. Seen in the --long 500s
    system test: two tasks left Pending."""
    repo, runner, fence, _clock, sync = world
    ids = running(repo, runner, 2, fence.epoch())
    runner.set_observation("ns0", "t0", JobObservation(JobPhase.SUCCEEDED, "Completed", "done"))
    observe = runner.observe
    runner.observe = lambda refs: {t: o for t, o in observe(refs).items() if t != ids[0]}  # type: ignore[method-assign]
    assert sync().full and repo.get(ids[0]).status is TaskStatus.PENDING
    runner.observe = observe  # type: ignore[method-assign]
    report = sync()  # nothing queued: only another full pass finds it
    assert report.full and repo.get(ids[0]).status is TaskStatus.SUCCEEDED
    assert not sync().full  # and then the incremental path again


def test_a_change_whose_write_failed_is_not_lost(world: tuple) -> None:  # type: ignore[type-arg]
    repo, runner, fence, _clock, sync = world
    ids = running(repo, runner, 1, fence.epoch())
    sync()
    runner.set_observation("ns0", "t0", JobObservation(JobPhase.SUCCEEDED, "Completed", "done"))
    runner.queued = {ids[0]}
    apply = repo.apply

    def down(*args: object, **kwargs: object) -> object:
        raise RetryableError("database unavailable")

    repo.apply = down  # type: ignore[method-assign,assignment]
    with pytest.raises(RetryableError):
        sync()
    repo.apply = apply  # type: ignore[method-assign]
    report = sync()
    assert report.full and repo.get(ids[0]).status is TaskStatus.SUCCEEDED


def test_a_full_pass_that_failed_is_tried_again_until_one_succeeds(world: tuple) -> None:  # type: ignore[type-arg]
    """A database outage outlasting a tick: the full pass after a failed round fails too (its reads),
    having taken the queued changes. The one after must be a full pass again, not the resync's in 600
    s. Seen in the --long MariaDB outage test: two tasks left Running."""
    repo, runner, fence, _clock, sync = world
    ids = running(repo, runner, 1, fence.epoch())
    sync()
    runner.set_observation("ns0", "t0", JobObservation(JobPhase.SUCCEEDED, "Completed", "done"))
    runner.queued = {ids[0]}
    get_many, list_by_status = repo.get_many, repo.list_by_status

    def down(*args: object, **kwargs: object) -> object:
        raise RetryableError("database unavailable")

    repo.get_many = down  # type: ignore[method-assign,assignment]
    repo.list_by_status = down  # type: ignore[method-assign,assignment]
    for _ in range(2):  # the failed round, then the failed full pass
        with pytest.raises(RetryableError):
            sync()
    repo.get_many, repo.list_by_status = get_many, list_by_status  # type: ignore[method-assign]
    report = sync()
    assert report.full and repo.get(ids[0]).status is TaskStatus.SUCCEEDED


def test_a_change_heard_before_dispatch_wrote_its_task_pending_is_kept(world: tuple) -> None:  # type: ignore[type-arg]
    """A Job can finish (and its events arrive) before its task's Pending write is committed: the
    change must wait for the row, not be dropped (the task would then sit Pending until the resync)."""
    repo, runner, fence, _clock, sync = world
    sync()  # the term's full pass: nothing in flight yet
    task = heard_before_pending(repo, runner)
    assert sync().observed == 0
    repo.apply([repo.get(task.id).start("early", NOW)], epoch=fence.epoch())  # dispatch's write lands
    report = sync()  # no new event: only the kept change can bring it
    assert report.observed == 1 and repo.get(task.id).status is TaskStatus.SUCCEEDED


def test_a_change_heard_before_the_pending_write_survives_a_full_pass(world: tuple) -> None:  # type: ignore[type-arg]
    """A full pass takes the queued changes and reads the rows in flight: a change whose row is still
    Normal is not in it, and no other event may come for it (seen: tasks stuck Pending through API
    faults, each failed round making the next tick a full pass)."""
    repo, runner, fence, clock, sync = world
    sync()  # the term's full pass: nothing in flight yet
    task = heard_before_pending(repo, runner)
    clock.now += 601  # the next tick is a full pass (a resync; a failed round does the same)
    assert sync().full
    repo.apply([repo.get(task.id).start("early", NOW)], epoch=fence.epoch())  # dispatch's write lands
    report = sync()  # no new event: only the kept change can bring it
    assert report.observed == 1 and repo.get(task.id).status is TaskStatus.SUCCEEDED


def test_a_change_taken_by_a_failed_round_is_read_again_after_the_full_pass(world: tuple) -> None:  # type: ignore[type-arg]
    repo, runner, fence, _clock, sync = world
    sync()
    task = heard_before_pending(repo, runner)
    get_many = repo.get_many

    def outage(*_args: object, **_kwargs: object) -> list[object]:
        raise RetryableError("database down")

    repo.get_many = outage  # type: ignore[method-assign]
    with pytest.raises(RetryableError):
        sync()
    repo.get_many = get_many  # type: ignore[method-assign]
    assert sync().full  # the row is still Normal: not in this pass
    repo.apply([repo.get(task.id).start("early", NOW)], epoch=fence.epoch())  # dispatch's write lands
    report = sync()
    assert report.observed == 1 and repo.get(task.id).status is TaskStatus.SUCCEEDED


def test_a_change_soon_after_a_round_waits_out_the_window_but_a_full_batch_goes_at_once() -> None:
    repo, runner, clock = MemoryTaskRepository(), FeedRunner(), Clock()
    fence = Fence(repo.advance_epoch())
    steps: list[object] = []  # the sleeps and observations of one tick, in order
    arriving: list[set[TaskId]] = []

    def sleep(seconds: float) -> None:  # changes keep arriving while sync waits
        steps.append(round(seconds, 3))
        if arriving:
            runner.queued |= arriving.pop(0)

    observe = runner.observe

    def observed(refs: Sequence[JobRef]) -> Mapping[TaskId, JobObservation]:
        steps.append({r.task_id for r in refs})
        return observe(refs)

    runner.observe = observed  # type: ignore[method-assign]
    settings = SyncSettings(write_batch_size=3, batch_window_seconds=0.1)
    sync = SyncTasks(repo, runner, FakeClock(NOW), fence, settings, monotonic=clock, sleep=sleep)
    ids = running(repo, runner, 6, fence.epoch())
    sync()  # the term's full pass
    runner.queued, steps[:] = {ids[0]}, []
    sync()  # a quiet feed's first round starts at once (then waits a window for more, finding none)
    assert steps == [{ids[0]}] + [0.01] * 10
    clock.now += 0.03
    runner.queued, arriving[:], steps[:] = {ids[1]}, [{ids[2]}], []
    sync()  # 30 ms after that round: waits the rest of the window, and what came meanwhile joins it
    assert steps[:8] == [0.01] * 7 + [{ids[1], ids[2]}]
    clock.now += 0.2
    runner.queued, steps[:] = {ids[0]}, []
    sync()
    clock.now += 0.03
    runner.queued, arriving[:], steps[:] = {ids[3]}, [{ids[4]}, {ids[5]}], []
    sync()  # changes that fill a write batch while it waits: it goes at once
    assert steps[:3] == [0.01, 0.01, {ids[3], ids[4], ids[5]}]
    clock.now += 0.03
    for i in (3, 4, 5):  # back to Running, so their next changes are read again
        runner.set_observation(f"ns{i % 2}", f"t{i}", JobObservation(JobPhase.ACTIVE))
    runner.queued, steps[:] = {ids[3], ids[4], ids[5]}, []
    sync()  # a whole write batch queued already: no wait first
    assert steps[0] == {ids[3], ids[4], ids[5]}


def test_background_releases_wait_while_a_tick_runs(world: tuple) -> None:  # type: ignore[type-arg]
    repo, runner, fence, _clock, sync = world
    ids = running(repo, runner, 251, fence.epoch())
    sync()  # the term's full pass
    released: list[int] = []
    releasing, first_may_end = threading.Event(), threading.Event()
    observing, tick_may_end = threading.Event(), threading.Event()
    release = runner.release

    def slow_release(refs: Sequence[JobRef]) -> None:
        releasing.set()
        first_may_end.wait(5)
        release(refs)
        released.append(len(refs))

    runner.release = slow_release  # type: ignore[method-assign]
    for i in range(250):
        runner.set_observation(f"ns{i % 2}", f"t{i}", JobObservation(JobPhase.SUCCEEDED, "Completed", "done"))
    runner.queued = set(ids[:250])
    assert sync().changed == 250  # their releases go to the background, RELEASE_CHUNK (100) at a time
    observe = runner.observe

    def held_observe(refs: Sequence[JobRef]) -> Mapping[TaskId, JobObservation]:
        observing.set()
        tick_may_end.wait(5)
        return observe(refs)

    runner.observe = held_observe  # type: ignore[method-assign]
    runner.queued = {ids[250]}
    assert releasing.wait(5)  # the first chunk is in flight
    tick = threading.Thread(target=sync)
    tick.start()
    assert observing.wait(5)
    first_may_end.set()  # the chunk in flight ends; the next must wait for the tick
    time.sleep(0.3)
    assert released == [100]
    tick_may_end.set()
    tick.join(5)
    deadline = time.monotonic() + 5
    while sum(released) < 250 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert released == [100, 100, 50]


def test_a_row_is_read_again_only_after_its_write_in_flight_has_landed() -> None:
    repo, runner = MemoryTaskRepository(), FeedRunner()
    fence = Fence(repo.advance_epoch())
    settings = SyncSettings(batch_window_seconds=0, max_rounds_per_tick=3)
    sync = SyncTasks(repo, runner, FakeClock(NOW), fence, settings)
    [task_id] = running(repo, runner, 1, fence.epoch())
    sync()  # the term's full pass
    apply = repo.apply

    def slow_apply(changes: Sequence[StatusChange], *, epoch: int) -> WriteResult:
        time.sleep(0.2)  # the first round's write is still in flight when the second round reads
        return apply(changes, epoch=epoch)

    repo.apply = slow_apply  # type: ignore[method-assign]
    rounds = iter([JobPhase.ACTIVE, JobPhase.SUCCEEDED])

    def take_changes() -> set[TaskId]:  # the Job starts, and finishes by the next round
        phase = next(rounds, None)
        if phase is None:
            return set()
        runner.set_observation("ns0", "t0", JobObservation(phase, "Completed" if phase is JobPhase.SUCCEEDED else ""))
        return {task_id}

    runner.take_changes = take_changes  # type: ignore[method-assign]
    report = sync()
    assert repo.get(task_id).status is TaskStatus.SUCCEEDED
    assert report.changed == 2 and report.lost == 0
