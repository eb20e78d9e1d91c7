"""Reading raw Job and Pod JSON into observations and diagnoses (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from nightwatch.adapters.kubernetes.status import (
    failure_diagnosis,
    is_stale,
    observe_job,
    pending_diagnosis,
)
from nightwatch.domain.observation import JobPhase


def cond(kind: str, reason: str = "", message: str = "", status: str = "True") -> dict[str, str]:
    return {"type": kind, "status": status, "reason": reason, "message": message}


def test_observe_job_follows_the_domain_rule() -> None:
    assert observe_job({"status": {}}).phase is JobPhase.PENDING
    assert observe_job({"status": {"active": 1, "ready": 1}}).phase is JobPhase.ACTIVE
    assert observe_job({"status": {"conditions": [cond("Complete", "CompletionsReached")]}}).phase is JobPhase.SUCCEEDED
    failed = observe_job({"status": {"failed": 2, "conditions": [cond("FailureTarget", "BackoffLimitExceeded")]}})
    assert failed.phase is JobPhase.FAILED and failed.summary == "BackoffLimitExceeded: 2 pod(s) failed"
    suspended = observe_job({"status": {"conditions": [cond("Suspended", "JobSuspended")]}})
    assert suspended.phase is JobPhase.SUSPENDED and suspended.reason == "JobSuspended"
    assert observe_job({"status": {"conditions": [cond("Complete", status="False")]}}).phase is JobPhase.PENDING
    assert observe_job({}).phase is JobPhase.PENDING  # a Job the controller has not touched yet


def test_an_active_pod_that_is_not_ready_is_pending_and_no_ready_field_trusts_active() -> None:
    assert observe_job({"status": {"active": 1, "ready": 0}}).phase is JobPhase.PENDING  # ImagePullBackOff
    assert observe_job({"status": {"active": 1}}).phase is JobPhase.ACTIVE  # a cluster older than 1.24


def test_pending_diagnosis_prefers_a_container_reason() -> None:
    pods: list[dict[str, Any]] = [
        {"status": {"conditions": [cond("PodScheduled", "Unschedulable", "no nodes", status="False")]}},
        {
            "status": {
                "containerStatuses": [
                    {"state": {"waiting": {"reason": "CreateContainerConfigError", "message": 'secret "db" not found'}}}
                ]
            }
        },
    ]
    assert pending_diagnosis(pods) == 'CreateContainerConfigError: secret "db" not found'
    assert pending_diagnosis(pods[:1]) == "Unschedulable: no nodes"
    creating = [{"status": {"containerStatuses": [{"state": {"waiting": {"reason": "ContainerCreating"}}}]}}]
    assert pending_diagnosis(creating) == ""  # slow, not stuck
    long = [
        {"status": {"containerStatuses": [{"state": {"waiting": {"reason": "ErrImagePull", "message": "x" * 999}}}]}}
    ]
    assert len(pending_diagnosis(long)) == 300


def test_failure_diagnosis_reads_the_newest_pod() -> None:
    def pod(ts: str, code: int, reason: str) -> dict[str, Any]:
        return {
            "metadata": {"creationTimestamp": ts},
            "status": {
                "containerStatuses": [{"name": "task", "state": {"terminated": {"exitCode": code, "reason": reason}}}]
            },
        }

    assert failure_diagnosis(
        [pod("2026-01-01T00:00:00Z", 1, "Error"), pod("2026-01-01T00:01:00Z", 137, "OOMKilled")]
    ) == ("container task was OOMKilled (exit code 137)")
    assert failure_diagnosis([pod("2026-01-01T00:00:00Z", 2, "Error")]) == "container task exited with code 2"
    assert failure_diagnosis([pod("2026-01-01T00:00:00Z", 0, "Completed")]) == ""


def test_is_stale() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert is_stale(now - timedelta(seconds=31), now, 30)
    assert not is_stale(now - timedelta(seconds=5), now, 30)
    assert not is_stale(None, now, 30)
