"""Failure classes from their evidence (issue 18): every shape the adapters report."""

from __future__ import annotations

import pytest

from nightwatch.domain.failures import FailureClass, classify
from nightwatch.domain.observation import DISRUPTION_REASONS, JobCondition, JobObservation, JobPhase

F = FailureClass
BACKOFF = JobCondition("Failed", reason="BackoffLimitExceeded", message="Job has reached the specified backoff limit")


def failed(**evidence: object) -> JobObservation:
    return JobObservation.from_job_status([BACKOFF], failed=1, **evidence)  # type: ignore[arg-type]


@pytest.mark.parametrize("reason", sorted(DISRUPTION_REASONS))
def test_every_disruption_target_reason_is_infrastructure(reason: str) -> None:
    failure = classify(failed(disruption=f"{reason}: preempted", exit_code=137, diagnosis="exited with code 137"))
    assert failure.failure_class is F.INFRASTRUCTURE and reason in failure.evidence


def test_a_lost_node_is_infrastructure() -> None:
    assert classify(failed(disruption="NodeLost: node gone")).failure_class is F.INFRASTRUCTURE


def test_oom_is_oom_under_backoff_limit_exceeded() -> None:
    failure = classify(failed(oom=True, exit_code=137, diagnosis="container task was OOMKilled (exit code 137)"))
    assert (failure.failure_class, failure.exit_code) == (F.OOM, 137)
    assert "OOMKilled" in failure.evidence and "BackoffLimitExceeded" in failure.evidence


@pytest.mark.parametrize("code", [1, 2, 42, 255])
def test_a_non_zero_exit_code_is_exit_code_with_the_code(code: int) -> None:
    failure = classify(failed(exit_code=code, diagnosis=f"container task exited with code {code}"))
    assert (failure.failure_class, failure.exit_code) == (F.EXIT_CODE, code)
    assert f"code {code}" in failure.evidence


def test_backoff_limit_exceeded_without_evidence_is_exit_code_of_unknown_code() -> None:
    failure = classify(failed())
    assert (failure.failure_class, failure.exit_code) == (F.EXIT_CODE, None)


def test_deadline_exceeded_is_deadline_even_with_the_kill_exit_code() -> None:
    deadline = JobCondition(
        "Failed", reason="DeadlineExceeded", message="Job was active longer than specified deadline"
    )
    obs = JobObservation.from_job_status([deadline], exit_code=137, diagnosis="container task exited with code 137")
    assert classify(obs).failure_class is F.DEADLINE


def test_a_job_missing_is_infrastructure_and_an_impossible_namespace_config() -> None:
    assert classify(JobObservation.missing("default", "x")).failure_class is F.INFRASTRUCTURE
    assert classify(JobObservation(JobPhase.MISSING, "InvalidName", "bad")).failure_class is F.CONFIG


def test_the_start_timeout_is_infrastructure_unless_its_last_reason_is_config() -> None:
    assert classify(JobObservation.start_timed_out(60, "")).failure_class is F.INFRASTRUCTURE
    assert classify(JobObservation.start_timed_out(60, "Unschedulable: 0/3 nodes")).failure_class is F.INFRASTRUCTURE
    for reason in ("ImagePullBackOff: not found", "ErrImagePull: x", "FailedCreate: pods forbidden"):
        assert classify(JobObservation.start_timed_out(60, reason)).failure_class is F.CONFIG, reason


def test_a_failure_reason_that_is_a_config_reason_is_config() -> None:
    obs = JobObservation(JobPhase.FAILED, "CreateContainerConfigError", "secret not found")
    assert classify(obs).failure_class is F.CONFIG
