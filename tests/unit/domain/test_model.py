"""Every transition of the task state machine, legal and illegal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nightwatch.domain.errors import InvalidTransition
from nightwatch.domain.model import MAX_MESSAGE_CHARS, Task, TaskId, TaskStatus
from nightwatch.domain.observation import JobObservation, JobPhase

NOW = datetime(2026, 5, 1, tzinfo=UTC)
S = TaskStatus


def task(status: TaskStatus = S.NORMAL, version: int = 3) -> Task:
    return Task(TaskId(1), "t", "default", "{}", status, version=version, job_name=None if status is S.NORMAL else "t")


def test_status_strings_are_exactly_those_of_the_original_system() -> None:
    assert [s.value for s in S] == ["Normal", "Pending", "Running", "Succeeded", "Failed", "Cancelled"]
    assert S.parse("Normal") is S.NORMAL
    assert S.parse("normal") is None and S.parse("Weird") is None


def test_start_moves_normal_to_pending_and_describes_the_cas_write() -> None:
    t = task()
    change = t.start("job-1", NOW)
    assert (change.expected_status, change.expected_version, change.status) == (S.NORMAL, 3, S.PENDING)
    assert change.job_name == "job-1" and change.started_at == NOW and change.finished_at is None
    assert t.status is S.PENDING and t.version == 4 and t.job_name == "job-1"


@pytest.mark.parametrize("start", [S.NORMAL, S.PENDING, S.RUNNING])
def test_fail_and_cancel_work_from_every_non_terminal_status(start: TaskStatus) -> None:
    failed = task(start).fail("boom", NOW)
    assert failed.status is S.FAILED and failed.message == "boom" and failed.finished_at == NOW
    cancelled = task(start).cancel(NOW)
    assert cancelled.status is S.CANCELLED and cancelled.finished_at == NOW


@pytest.mark.parametrize("terminal", [S.SUCCEEDED, S.FAILED, S.CANCELLED])
def test_terminal_states_are_final(terminal: TaskStatus) -> None:
    t = task(terminal)
    for move in (lambda: t.start("x", NOW), lambda: t.fail("x", NOW), lambda: t.cancel(NOW)):
        with pytest.raises(InvalidTransition):
            move()
    with pytest.raises(InvalidTransition):
        t.observe(JobObservation(JobPhase.SUCCEEDED), NOW)
    assert t.status is terminal and t.version == 3


@pytest.mark.parametrize("start", [S.PENDING, S.RUNNING])
def test_start_is_only_for_normal_tasks(start: TaskStatus) -> None:
    with pytest.raises(InvalidTransition, match=f"from {start} to Pending"):
        task(start).start("again", NOW)


def test_normal_tasks_do_not_observe_jobs() -> None:
    with pytest.raises(InvalidTransition):
        task(S.NORMAL).observe(JobObservation(JobPhase.ACTIVE), NOW)


@pytest.mark.parametrize(
    ("start", "phase", "expected"),
    [
        (S.PENDING, JobPhase.ACTIVE, S.RUNNING),
        (S.PENDING, JobPhase.SUCCEEDED, S.SUCCEEDED),
        (S.PENDING, JobPhase.FAILED, S.FAILED),
        (S.PENDING, JobPhase.MISSING, S.FAILED),
        (S.RUNNING, JobPhase.SUCCEEDED, S.SUCCEEDED),
        (S.RUNNING, JobPhase.FAILED, S.FAILED),
        (S.RUNNING, JobPhase.MISSING, S.FAILED),
    ],
)
def test_observations_move_in_flight_tasks(start: TaskStatus, phase: JobPhase, expected: TaskStatus) -> None:
    change = task(start).observe(JobObservation(phase, "Reason", "detail"), NOW)
    assert change is not None and change.status is expected
    if expected.is_terminal:
        assert change.message == "Reason: detail" and change.finished_at == NOW


def test_no_write_when_nothing_changed() -> None:
    assert task(S.RUNNING).observe(JobObservation(JobPhase.ACTIVE), NOW) is None
    assert task(S.RUNNING).observe(JobObservation(JobPhase.PENDING), NOW) is None
    assert task(S.PENDING).observe(JobObservation(JobPhase.PENDING), NOW) is None


def test_a_new_diagnosis_on_a_pending_task_is_written_once() -> None:
    t = task(S.PENDING)
    change = t.observe(JobObservation(JobPhase.PENDING, "ImagePullBackOff", "Back-off pulling image"), NOW)
    assert change is not None and change.status is S.PENDING
    assert t.message == "ImagePullBackOff: Back-off pulling image"
    assert t.observe(JobObservation(JobPhase.PENDING, "ImagePullBackOff", "Back-off pulling image"), NOW) is None


def test_missing_job_fails_with_a_message_naming_it() -> None:
    t = task(S.RUNNING)
    t.observe(JobObservation.missing("default", "t"), NOW)
    assert t.status is S.FAILED and "outcome unknown" in t.message  # not a failure of its own
    assert "deleted" in t.message  # says why it does not exist: nightwatch did create it


def test_messages_are_clipped() -> None:
    change = task().fail("x" * (MAX_MESSAGE_CHARS * 2), NOW)
    assert len(change.message) == MAX_MESSAGE_CHARS and change.message.endswith("...")


def test_only_a_start_sets_the_job_name_and_start_time() -> None:
    # A row written as Pending by hand, with no start time: later moves carry that unchanged.
    t = Task(TaskId(1), "t", "default", "{}", S.PENDING, job_name=None, started_at=None)
    change = t.observe(JobObservation(JobPhase.PENDING, "ImagePullBackOff", "x"), NOW)
    assert change is not None and change.started_at is None and change.job_name is None
    done = t.observe(JobObservation(JobPhase.SUCCEEDED), NOW)
    assert done is not None and done.started_at is None and done.job_name is None


# -- the whole transition table, and suspend (issue 15) ----------------------------------------------
ALLOWED = {
    (S.NORMAL, S.NORMAL),  # postponed: a not-before time (issues 18, 19)
    (S.NORMAL, S.PENDING),
    (S.NORMAL, S.FAILED),
    (S.NORMAL, S.CANCELLED),
    (S.PENDING, S.NORMAL),  # a retry: the next attempt (issue 18)
    (S.PENDING, S.PENDING),
    (S.PENDING, S.RUNNING),
    (S.PENDING, S.SUCCEEDED),
    (S.PENDING, S.FAILED),
    (S.PENDING, S.CANCELLED),
    (S.RUNNING, S.NORMAL),  # a retry
    (S.RUNNING, S.PENDING),  # its Job was suspended
    (S.RUNNING, S.SUCCEEDED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.CANCELLED),
}


@pytest.mark.parametrize("start", list(S))
@pytest.mark.parametrize("to", list(S))
def test_the_transition_table(start: TaskStatus, to: TaskStatus) -> None:
    t = task(start)
    if (start, to) in ALLOWED:
        assert t._move(to, NOW, message="m").status is to
    else:
        with pytest.raises(InvalidTransition):
            t._move(to, NOW, message="m")


def test_postpone_sets_the_not_before_time_and_only_on_a_normal_task() -> None:
    t = task(S.NORMAL)
    later = NOW + timedelta(minutes=10)
    change = t.postpone(later, NOW)
    assert change.status is S.NORMAL and change.next_attempt_at == later and t.next_attempt_at == later
    assert not t.due(NOW) and t.due(later)
    started = t.start("job", later)
    assert started.next_attempt_at == later and started.attempt == 1  # carried unchanged
    with pytest.raises(InvalidTransition):
        t.postpone(later, NOW)


def test_a_task_is_due_only_once_its_run_at_and_not_before_time_have_come() -> None:
    t = task(S.NORMAL)
    assert t.due(NOW)
    t.run_at = NOW + timedelta(seconds=1)
    assert not t.due(NOW)
    t.run_at, t.next_attempt_at = NOW, NOW + timedelta(seconds=5)
    assert not t.due(NOW + timedelta(seconds=4)) and t.due(NOW + timedelta(seconds=5))


SUSPENDED = JobObservation(JobPhase.SUSPENDED, "JobSuspended", "Job suspended")


def test_a_suspended_job_sends_a_running_task_back_to_pending_and_resume_runs_it_again() -> None:
    t = task(S.RUNNING)
    t.started_at = NOW
    change = t.observe(SUSPENDED, NOW)
    assert change is not None and (change.expected_status, change.status) == (S.RUNNING, S.PENDING)
    assert change.message == "Suspended: JobSuspended: Job suspended" and change.finished_at is None
    assert change.started_at == NOW  # still the dispatch time
    assert t.observe(SUSPENDED, NOW) is None  # still suspended: nothing to write
    resumed = t.observe(JobObservation(JobPhase.ACTIVE), NOW)
    assert resumed is not None and resumed.status is S.RUNNING and resumed.message == ""
    done = t.observe(JobObservation(JobPhase.SUCCEEDED, "CompletionsReached", "done"), NOW)
    assert done is not None and done.status is S.SUCCEEDED


def test_a_suspended_pending_task_stays_pending_and_says_so_once() -> None:
    t = task(S.PENDING)
    change = t.observe(SUSPENDED, NOW)
    assert change is not None and change.status is S.PENDING and t.message == "Suspended: JobSuspended: Job suspended"
    assert t.observe(SUSPENDED, NOW) is None
    assert t.observe(JobObservation(JobPhase.PENDING), NOW) is not None  # resumed, no pod yet: message cleared
    assert t.status is S.PENDING and t.message == ""


def test_a_running_task_still_does_not_go_back_to_pending_for_a_pod_that_is_not_ready() -> None:
    assert task(S.RUNNING).observe(JobObservation(JobPhase.PENDING, "ImagePullBackOff", "x"), NOW) is None
