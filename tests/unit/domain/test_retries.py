"""Retry policies, backoff bounds, per-attempt Job names and the per-task decision (issue 18)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nightwatch.domain.errors import InvalidTaskSpec
from nightwatch.domain.model import Task, TaskId, TaskStatus
from nightwatch.domain.names import DNS1123_LABEL_MAX, check_dns1123_label, job_name_for
from nightwatch.domain.observation import JobCondition, JobObservation, JobPhase
from nightwatch.domain.retries import (
    MAX_BACKOFF_SECONDS,
    RetryPolicy,
    RetrySpec,
    decide,
    resolve_policy,
    retry_spec_of,
)
from nightwatch.domain.submission import SubmissionPolicy, validate_submission

NOW = datetime(2026, 1, 1, tzinfo=UTC)
S = TaskStatus


def running(attempt: int = 1) -> Task:
    return Task(TaskId(1), "t", "default", "{}", S.RUNNING, job_name=job_name_for("t", attempt), attempt=attempt)


def exit_with(code: int) -> JobObservation:
    cond = JobCondition("Failed", reason="BackoffLimitExceeded", message="backoff limit")
    return JobObservation.from_job_status([cond], exit_code=code, diagnosis=f"container task exited with code {code}")


# -- names ------------------------------------------------------------------------------------------
def test_attempt_one_keeps_the_task_name_and_later_attempts_get_a_suffix() -> None:
    assert job_name_for("nightly", 1) == "nightly"
    assert [job_name_for("nightly", k) for k in (2, 3, 10)] == ["nightly-r2", "nightly-r3", "nightly-r10"]


@given(st.from_regex(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", fullmatch=True), st.integers(1, 100))
def test_every_attempt_name_is_a_dns_label_unique_per_attempt(name: str, attempt: int) -> None:
    job = job_name_for(name, attempt)
    assert len(job) <= DNS1123_LABEL_MAX and check_dns1123_label(job, "job") == job
    assert job != job_name_for(name, attempt + 1)


def test_long_names_sharing_a_prefix_get_different_jobs() -> None:
    a, b = "a" * 62 + "x", "a" * 62 + "y"
    assert job_name_for(a, 2) != job_name_for(b, 2)


# -- policy ------------------------------------------------------------------------------------------
def test_the_task_overrides_the_profile_which_overrides_the_default() -> None:
    default = RetrySpec(attempts=2, infrastructure_attempts=3, backoff_seconds=5)
    profile = RetrySpec(attempts=4, on_oom=True)
    policy = resolve_policy(RetrySpec(attempts=6), default, profile)
    assert (policy.attempts, policy.on_oom, policy.infrastructure_attempts, policy.backoff_seconds) == (6, True, 3, 5)
    assert resolve_policy(None, default).attempts == 2
    assert resolve_policy(RetrySpec(infrastructure_attempts=0), default).infrastructure_attempts == 0
    # A deployment default that sets one key keeps the built-in values of the others.
    partial = resolve_policy(None, RetrySpec(attempts=2))
    assert (partial.attempts, partial.infrastructure_attempts, partial.max_backoff_seconds) == (2, 3, 600)


@pytest.mark.parametrize(
    ("retry", "loc"),
    [
        ({"attempts": 0}, ("info", "retry", "attempts")),
        ({"attempts": 101}, ("info", "retry", "attempts")),
        ({"attempts": "3"}, ("info", "retry", "attempts")),
        ({"exitCodes": [0]}, ("info", "retry", "exitCodes", 0)),
        ({"exitCodes": [256]}, ("info", "retry", "exitCodes", 0)),
        ({"onOOM": "yes"}, ("info", "retry", "onOOM")),
        ({"infrastructureAttempts": -1}, ("info", "retry", "infrastructureAttempts")),
        ({"backoffSeconds": -1}, ("info", "retry", "backoffSeconds")),
        ({"maxBackoffSeconds": MAX_BACKOFF_SECONDS + 1}, ("info", "retry", "maxBackoffSeconds")),
        ({"backoffSeconds": 10, "maxBackoffSeconds": 1}, ("info", "retry")),
        ({"attemps": 3}, ("info", "retry", "attemps")),
    ],
)
def test_an_invalid_policy_is_refused_by_the_one_validator_naming_the_field(
    retry: dict[str, object], loc: tuple[object, ...]
) -> None:
    with pytest.raises(InvalidTaskSpec) as refused:
        validate_submission("t", "default", {"image": "busybox", "retry": retry}, SubmissionPolicy())
    assert [p.loc for p in refused.value.problems] == [loc]
    with pytest.raises(InvalidTaskSpec):
        retry_spec_of({"retry": retry})


@given(
    base=st.floats(0, MAX_BACKOFF_SECONDS),
    ceiling=st.floats(0, MAX_BACKOFF_SECONDS),
    attempt=st.integers(1, 100),
    jitter=st.floats(0, 1, exclude_max=True),
)
def test_the_backoff_stays_in_half_to_whole_of_the_capped_exponential(
    base: float, ceiling: float, attempt: int, jitter: float
) -> None:
    policy = resolve_policy(RetrySpec(backoff_seconds=base, max_backoff_seconds=max(base, ceiling)))
    wait = policy.backoff(attempt, jitter).total_seconds()
    d = min(policy.max_backoff_seconds, base * 2.0 ** (attempt - 1))
    assert d / 2 - 1e-6 <= wait <= d + 1e-6
    assert wait <= MAX_BACKOFF_SECONDS + 1e-6


def test_the_backoff_doubles_until_the_cap() -> None:
    policy = RetryPolicy(backoff_seconds=10, max_backoff_seconds=60)
    assert [policy.backoff(k, 0.999999).total_seconds() for k in (1, 2, 3, 4, 5)] == pytest.approx([10, 20, 40, 60, 60])
    assert policy.backoff(1, 0.0) == timedelta(seconds=5)


# -- decide ------------------------------------------------------------------------------------------
def test_a_listed_exit_code_retries_until_the_attempts_are_spent() -> None:
    policy = RetryPolicy(attempts=3, exit_codes=frozenset({2}), backoff_seconds=10)
    first = decide(running(1), exit_with(2), policy, NOW, jitter=0.0)
    assert first is not None and (first.status, first.attempt) == (S.NORMAL, 2)
    assert first.next_attempt_at == NOW + timedelta(seconds=5) and first.failure_class == "exit_code"
    assert "attempt 1 of 3" in first.message and "code 2" in first.message
    last = decide(running(3), exit_with(2), policy, NOW)
    assert last is not None and last.status is S.FAILED and "[exit_code failure" in last.message
    assert "attempt 3 of 3" in last.message


def test_an_unlisted_exit_code_fails_at_once() -> None:
    change = decide(running(), exit_with(1), RetryPolicy(attempts=3, exit_codes=frozenset({2})), NOW)
    assert change is not None and change.status is S.FAILED and "attempt 1 of 1" in change.message


def test_oom_retries_only_with_on_oom() -> None:
    oom = JobObservation(JobPhase.FAILED, "BackoffLimitExceeded", "OOMKilled", exit_code=137, oom=True)
    assert decide(running(), oom, RetryPolicy(attempts=2), NOW).status is S.FAILED  # type: ignore[union-attr]
    assert decide(running(), oom, RetryPolicy(attempts=2, on_oom=True), NOW).status is S.NORMAL  # type: ignore[union-attr]


def test_infrastructure_retries_unless_the_task_says_zero_and_config_and_deadline_never() -> None:
    evicted = JobObservation(JobPhase.FAILED, "BackoffLimitExceeded", "x", disruption="EvictionByEvictionAPI")
    assert decide(running(), evicted, RetryPolicy(infrastructure_attempts=3), NOW).status is S.NORMAL  # type: ignore[union-attr]
    assert decide(running(4), evicted, RetryPolicy(infrastructure_attempts=3), NOW).status is S.FAILED  # type: ignore[union-attr]
    assert decide(running(), evicted, RetryPolicy(infrastructure_attempts=0), NOW).status is S.FAILED  # type: ignore[union-attr]
    generous = RetryPolicy(attempts=10, exit_codes=frozenset(range(1, 256)), on_oom=True, infrastructure_attempts=10)
    deadline = JobObservation(JobPhase.FAILED, "DeadlineExceeded", "too long", exit_code=137)
    config = JobObservation.start_timed_out(30, "ImagePullBackOff: no such image")
    for obs in (deadline, config):
        assert decide(running(), obs, generous, NOW).status is S.FAILED  # type: ignore[union-attr]


def test_anything_but_a_failure_is_task_observe() -> None:
    assert decide(running(), JobObservation(JobPhase.ACTIVE), RetryPolicy(attempts=3), NOW) is None
    done = decide(running(), JobObservation(JobPhase.SUCCEEDED, "Complete"), RetryPolicy(attempts=3), NOW)
    assert done is not None and done.status is S.SUCCEEDED
