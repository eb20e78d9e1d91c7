"""The pure rule from a Job's status to a JobObservation, for every condition combination."""

from __future__ import annotations

import itertools

import pytest

from nightwatch.domain.observation import JobCondition, JobObservation, JobPhase

TYPES = ["SuccessCriteriaMet", "Complete", "FailureTarget", "Failed", "Suspended"]


def cond(kind: str, status: str = "True") -> JobCondition:
    return JobCondition(kind, status, reason=f"{kind}Reason", message=f"{kind} message")


@pytest.mark.parametrize("combo", [c for n in range(len(TYPES) + 1) for c in itertools.combinations(TYPES, n)])
@pytest.mark.parametrize("active", [0, 2])
def test_every_combination_of_true_conditions(combo: tuple[str, ...], active: int) -> None:
    obs = JobObservation.from_job_status([cond(c) for c in combo], active=active, failed=1, succeeded=1)
    if {"FailureTarget", "Failed"} & set(combo):
        assert obs.phase is JobPhase.FAILED
        first = "FailureTarget" if "FailureTarget" in combo else "Failed"
        assert obs.reason == f"{first}Reason"
    elif {"SuccessCriteriaMet", "Complete"} & set(combo):
        assert obs.phase is JobPhase.SUCCEEDED
    elif "Suspended" in combo:
        assert obs.phase is JobPhase.SUSPENDED and obs.reason == "SuspendedReason"
    elif active:
        assert obs.phase is JobPhase.ACTIVE
    else:
        assert obs.phase is JobPhase.PENDING


def test_success_criteria_met_is_success_before_complete_appears() -> None:
    obs = JobObservation.from_job_status([cond("SuccessCriteriaMet")], active=1)
    assert obs.phase is JobPhase.SUCCEEDED


def test_failure_target_is_failure_before_failed_appears() -> None:
    obs = JobObservation.from_job_status([cond("FailureTarget")], active=1)
    assert obs.phase is JobPhase.FAILED and obs.summary == "FailureTargetReason: FailureTarget message"


@pytest.mark.parametrize("status", ["False", "Unknown"])
def test_conditions_that_are_not_true_are_ignored(status: str) -> None:
    conditions = [cond(t, status) for t in TYPES]
    assert JobObservation.from_job_status(conditions).phase is JobPhase.PENDING
    assert JobObservation.from_job_status(conditions, active=1).phase is JobPhase.ACTIVE


def test_pending_carries_the_diagnosis_and_failure_keeps_it() -> None:
    pending = JobObservation.from_job_status([], diagnosis="ImagePullBackOff: pull access denied")
    assert pending.phase is JobPhase.PENDING and pending.summary == "ImagePullBackOff: pull access denied"
    failed = JobObservation.from_job_status([JobCondition("Failed", reason="BackoffLimitExceeded")], failed=2)
    assert failed.summary == "BackoffLimitExceeded: 2 pod(s) failed"


def test_missing_says_the_outcome_is_unknown() -> None:
    obs = JobObservation.missing("demo", "demo-task-2")
    assert obs.phase is JobPhase.MISSING
    assert obs.summary == "JobMissing: the Job was deleted before its outcome was read; outcome unknown"


def test_an_active_pod_that_is_not_ready_is_still_pending() -> None:
    # Job.status.active counts pending pods too: ImagePullBackOff is active=1, ready=0.
    stuck = JobObservation.from_job_status([], active=1, ready=0, diagnosis="ImagePullBackOff: not found")
    assert stuck.phase is JobPhase.PENDING and stuck.reason == "" and "ImagePullBackOff" in stuck.summary
    assert JobObservation.from_job_status([], active=1, ready=1).phase is JobPhase.ACTIVE
    # A cluster too old to report `ready` (< 1.24): active pods have to count as running.
    assert JobObservation.from_job_status([], active=1).phase is JobPhase.ACTIVE


def test_a_suspended_job_is_suspended_even_with_pods_still_counted_and_resumed_is_not() -> None:
    suspended = JobObservation.from_job_status(
        [JobCondition("Suspended", reason="JobSuspended", message="Job suspended")]
    )
    assert suspended.phase is JobPhase.SUSPENDED
    assert suspended.suspended_message == "Suspended: JobSuspended: Job suspended"
    assert JobObservation.from_job_status([JobCondition("Suspended")], active=1, ready=1).phase is JobPhase.SUSPENDED
    resumed = JobCondition("Suspended", "False", reason="JobResumed", message="Job resumed")
    assert JobObservation.from_job_status([resumed], active=1, ready=1).phase is JobPhase.ACTIVE
    assert JobObservation.from_job_status([resumed]).phase is JobPhase.PENDING


def test_a_start_timeout_fails_with_the_last_known_reason() -> None:
    timed_out = JobObservation.start_timed_out(300, 'FailedCreate: Error creating: pods "x-abcde" is forbidden: quota')
    assert timed_out.phase is JobPhase.FAILED and timed_out.reason == "StartTimeout"
    assert timed_out.summary == (
        "StartTimeout: no pod was running 300 s after the Job started, so it was deleted; "
        'last known reason: FailedCreate: Error creating: pods "x-abcde" is forbidden: quota'
    )
    assert JobObservation.start_timed_out(5, "").summary.endswith("no reason was reported")
