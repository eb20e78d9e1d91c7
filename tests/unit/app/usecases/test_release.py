"""The outcome-keeping hold on Jobs: SyncTasks releases a Job once its terminal status is stored,
cancelling releases it, and ReleaseJobs finds what is left over (rows already terminal, or gone)."""

from __future__ import annotations

import pytest

from nightwatch.adapters.memory import FixedFence
from nightwatch.app.usecases.release import ReleaseJobs
from nightwatch.app.usecases.sync import SyncTasks
from nightwatch.domain.errors import LeadershipLost, RetryableError
from nightwatch.domain.model import StatusChange, TaskId
from nightwatch.domain.observation import JobObservation, JobPhase
from nightwatch.domain.ports import WriteResult
from tests.unit.app.usecases.world import S, World

DONE = JobObservation(JobPhase.SUCCEEDED, "Completed", "done")


def test_sync_releases_a_job_only_after_its_terminal_status_is_written(world: World) -> None:
    ok, running = world.insert("ok"), world.insert("running")
    world.dispatch()
    world.runner.set_observation("default", "running", JobObservation(JobPhase.ACTIVE))
    assert world.sync().released == 0 and world.runner.released == []  # Running: nothing stored yet
    world.runner.set_observation("default", "ok", DONE)
    report = world.sync()
    assert world.status(ok) is S.SUCCEEDED and world.status(running) is S.RUNNING
    assert report.released == 1 and world.runner.released == [("default", "ok")]


def test_a_write_that_fails_releases_nothing(world: World) -> None:
    world.insert("ok")
    world.dispatch()
    world.runner.set_observation("default", "ok", DONE)
    with pytest.raises(LeadershipLost):
        SyncTasks(world.repo, world.runner, world.clock, _FenceAfterObserve())()
    assert world.runner.released == []  # the row still says Pending: the Job must keep its outcome


class _FenceAfterObserve:
    """Lets the pre-observe check pass, then refuses the write."""

    def __init__(self) -> None:
        self.calls = 0

    def epoch(self) -> int:
        self.calls += 1
        if self.calls > 1:
            raise LeadershipLost("lost before the write")
        return 1


def test_a_row_someone_else_moved_on_keeps_its_job(world: World) -> None:
    task_id = world.insert("raced")
    world.dispatch()
    world.runner.set_observation("default", "raced", DONE)
    # Another writer (a cancel, a newer leader) moves the row first: this sync's write is lost.
    task = world.repo.get(task_id)
    original_apply = world.repo.apply

    def apply_after_a_rival(changes: list[StatusChange], *, epoch: int) -> WriteResult:
        original_apply([task.copy().fail("rival", world.clock.now())], epoch=epoch)
        world.repo.apply = original_apply  # type: ignore[method-assign]
        return original_apply(changes, epoch=epoch)

    world.repo.apply = apply_after_a_rival  # type: ignore[method-assign]
    report = world.sync()
    assert report.lost == 1 and report.released == 0 and world.runner.released == []


def test_a_release_the_runner_refuses_leaves_the_outcome_written(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    task_id = world.insert("ok")
    world.dispatch()
    world.runner.set_observation("default", "ok", DONE)

    def refuse(refs: object) -> None:
        raise RetryableError("API down")

    with monkeypatch.context() as patched:
        patched.setattr(world.runner, "release", refuse)
        report = world.sync()
    assert world.status(task_id) is S.SUCCEEDED and report.released == 0
    assert world.runner.released == []
    # ReleaseJobs finds it: a finished, held Job whose row is terminal.
    assert world.release().released == 1
    assert world.runner.released == [("default", "ok")]


def test_release_jobs_keeps_jobs_whose_row_still_waits_and_releases_terminal_or_deleted_rows(world: World) -> None:
    waiting, done, gone = world.insert("waiting"), world.insert("done"), world.insert("gone")
    world.dispatch()
    for name in ("waiting", "done", "gone"):
        world.runner.set_observation("default", name, DONE)
    # done: its row is terminal (a leader died between the write and the release); gone: no row any more
    done_task = world.repo.get(done)
    world.repo.apply([done_task.fail("written before a crash", world.clock.now())], epoch=world.fence.epoch())
    del world.repo._rows[gone]  # a row deleted by hand
    report = world.release()
    assert (report.held, report.released, report.kept) == (3, 2, 1)
    assert sorted(world.runner.released) == [("default", "done"), ("default", "gone")]
    assert world.status(waiting) is S.PENDING
    # Everything (the uninstall escape hatch): the waiting one too, whatever its row says.
    hatch = ReleaseJobs(world.repo, world.runner, ["default"])
    assert hatch(everything=True).released == 1
    assert ("default", "waiting") in world.runner.released


def test_release_jobs_checks_the_fence_before_touching_the_cluster(world: World) -> None:
    world.insert("t")
    world.dispatch()

    class Lost:
        def epoch(self) -> int:
            raise LeadershipLost("not the leader")

    with pytest.raises(LeadershipLost):
        ReleaseJobs(world.repo, world.runner, ["default"], fence=Lost())()
    assert world.runner.calls["held"] == 0
    assert ReleaseJobs(world.repo, world.runner, ["default"], fence=FixedFence(1))().held == 0


def test_cancel_of_a_running_task_deletes_its_job(world: World) -> None:
    task_id = world.insert("long")
    world.dispatch()
    world.runner.set_observation("default", "long", JobObservation(JobPhase.ACTIVE))
    world.sync()
    world.request_cancel(TaskId(task_id))
    world.cancel()
    assert world.status(task_id) is S.CANCELLED
    assert world.runner.deleted == [("default", "long")]  # delete lets go of the Job too (port contract)
    assert world.runner.held("default", unfinished=True) == []
