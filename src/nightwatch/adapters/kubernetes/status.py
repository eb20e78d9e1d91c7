"""Reading raw Job and Pod JSON (dicts, not the client's models) into domain observations.

Pure functions. The adapter lists Jobs with `_preload_content=False` and `orjson.loads`, because
building the official client's model objects is most of the cost of a big list (measured 5x).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from nightwatch.adapters.kubernetes.jobbody import (
    KUEUE_COUNTED_LABEL,
    KUEUE_QUEUE_LABEL,
    START_TIMEOUT_ANNOTATION,
    TASK_ID_LABEL,
    attempt_of,
)
from nightwatch.domain.observation import DISRUPTION_REASONS, JobCondition, JobObservation, JobPhase
from nightwatch.domain.ports import JobRef

MAX_DIAGNOSIS_CHARS = 300
"""Pod messages (an image pull error, a scheduler explanation) can be long; the row keeps a summary."""

_WAITING_IS_TROUBLE = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "ErrImageNeverPull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "CrashLoopBackOff",
    }
)
"""Waiting reasons that mean the pod will not start by itself (ContainerCreating is just slow)."""


def task_id_of(obj: Mapping[str, Any]) -> str | None:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    value = labels.get(TASK_ID_LABEL)
    return value if isinstance(value, str) else None


def conditions_of(job: Mapping[str, Any]) -> list[JobCondition]:
    return [
        JobCondition(
            type=str(c.get("type", "")),
            status=str(c.get("status", "")),
            reason=str(c.get("reason") or ""),
            message=str(c.get("message") or ""),
        )
        for c in (job.get("status") or {}).get("conditions") or ()
        if isinstance(c, dict)
    ]


def _count(status: Mapping[str, Any], key: str) -> int:
    value = status.get(key)
    return value if isinstance(value, int) else 0


def observe_job(
    job: Mapping[str, Any],
    diagnosis: str = "",
    conditions: list[JobCondition] | None = None,
    evidence: FailureEvidence | None = None,
) -> JobObservation:
    """Classify one raw Job through the domain's rule (`evidence`: a failed attempt's pods)."""
    status = job.get("status") or {}
    observed = JobObservation.from_job_status(
        conditions_of(job) if conditions is None else conditions,
        active=_count(status, "active"),
        # None when the cluster does not report it (< 1.24): the domain then trusts `active` alone.
        ready=status.get("ready") if isinstance(status.get("ready"), int) else None,
        succeeded=_count(status, "succeeded"),
        failed=_count(status, "failed"),
        diagnosis=evidence.diagnosis if evidence is not None else diagnosis,
        exit_code=evidence.exit_code if evidence is not None else None,
        oom=evidence.oom if evidence is not None else False,
        disruption=evidence.disruption if evidence is not None else "",
    )
    return _queued_by_kueue(job, observed)


def _queued_by_kueue(job: Mapping[str, Any], observed: JobObservation) -> JobObservation:
    """A suspended Job with Kueue's queue label waits for Kueue's admission (or was preempted by it):
    `Queued by Kueue: <reason>`, from the Suspended condition when the Job controller has set it
    (`Waiting for Kueue: <reason>` when its Kueue mode keeps it counted: the `KUEUE_COUNTED_LABEL`)."""
    labels = (job.get("metadata") or {}).get("labels") or {}
    suspended = (job.get("spec") or {}).get("suspend") is True
    if KUEUE_QUEUE_LABEL not in labels or not suspended:
        return observed
    counted = labels.get(KUEUE_COUNTED_LABEL) == "true"
    if observed.phase is JobPhase.SUSPENDED:
        return replace(observed, queued_by_kueue=True, kueue_counted=counted)
    if observed.phase is JobPhase.PENDING:
        return JobObservation(
            JobPhase.SUSPENDED, "", "waiting for admission", queued_by_kueue=True, kueue_counted=counted
        )
    return observed


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_DIAGNOSIS_CHARS else text[: MAX_DIAGNOSIS_CHARS - 3] + "..."


def _container_statuses(pod: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    status = pod.get("status") or {}
    for key in ("initContainerStatuses", "containerStatuses"):
        for item in status.get(key) or ():
            if isinstance(item, dict):
                yield item


def pending_diagnosis(pods: Iterable[Mapping[str, Any]]) -> str:
    """Why a task's pods are not running (image pull, config error, unschedulable), or ""."""
    unschedulable = ""
    for pod in pods:
        for container in _container_statuses(pod):
            waiting = (container.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if reason in _WAITING_IS_TROUBLE:
                message = waiting.get("message") or ""
                return _shorten(f"{reason}: {message}" if message else str(reason))
        for condition in (pod.get("status") or {}).get("conditions") or ():
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False" and not unschedulable:
                reason = condition.get("reason") or "Unschedulable"
                message = condition.get("message") or ""
                unschedulable = _shorten(f"{reason}: {message}" if message else reason)
    return unschedulable


@dataclass(frozen=True, slots=True)
class FailureEvidence:
    """What a failed attempt's pods say (the domain classifies it: `failures.classify`)."""

    diagnosis: str = ""
    exit_code: int | None = None
    oom: bool = False
    disruption: str = ""


def _disruption_of(pod: Mapping[str, Any]) -> str:
    """`reason: message` of a true DisruptionTarget condition, or NodeLost (a pod on a lost node), or ""."""
    status = pod.get("status") or {}
    for condition in status.get("conditions") or ():
        if not isinstance(condition, dict):
            continue
        if condition.get("type") == "DisruptionTarget" and condition.get("status") == "True":
            reason = str(condition.get("reason") or "DisruptionTarget")
            if reason in DISRUPTION_REASONS:
                message = str(condition.get("message") or "")
                return _shorten(f"{reason}: {message}" if message else reason)
    if status.get("reason") == "NodeLost":
        return "NodeLost: " + _shorten(str(status.get("message") or "the pod's node was lost"))
    return ""


def failure_evidence(pods: Iterable[Mapping[str, Any]], attempt: int = 1) -> FailureEvidence:
    """How a failed attempt's container ended (exit code, OOMKilled, a disruption), from the newest pod
    of that attempt (pods of earlier attempts carry the same task id), or no evidence."""
    mine = [p for p in pods if attempt_of(p) == attempt]
    ordered = sorted(mine, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp") or ""), reverse=True)
    for pod in ordered:
        disruption = _disruption_of(pod)
        for container in _container_statuses(pod):
            for state_key in ("state", "lastState"):
                terminated = (container.get(state_key) or {}).get("terminated") or {}
                code = terminated.get("exitCode")
                if isinstance(code, int) and code != 0:
                    name = container.get("name", "?")
                    reason = terminated.get("reason") or ""
                    if reason == "OOMKilled":
                        text = f"container {name} was OOMKilled (exit code {code})"
                    else:
                        text = f"container {name} exited with code {code}" + (
                            f" ({reason})" if reason and reason != "Error" else ""
                        )
                    if disruption:
                        text = f"{text}; pod disrupted: {disruption}"
                    return FailureEvidence(text, code, reason == "OOMKilled", disruption)
        if disruption:
            return FailureEvidence(f"pod disrupted: {disruption}", disruption=disruption)
    return FailureEvidence()


def failure_diagnosis(pods: Iterable[Mapping[str, Any]]) -> str:
    """How a failed task's container ended (exit code, OOMKilled), from its newest pod, or ""."""
    return failure_evidence(pods).diagnosis


def is_stale(started_at: datetime | None, now: datetime, after_seconds: float) -> bool:
    return started_at is not None and (now - started_at).total_seconds() >= after_seconds


def pods_still_terminating(job: Mapping[str, Any], conditions: Sequence[JobCondition]) -> bool:
    """FailureTarget without Failed while `status.terminating` > 0: its pods' exit codes are not known yet."""
    true = {c.type for c in conditions if c.is_true}
    terminating = (job.get("status") or {}).get("terminating")
    return "FailureTarget" in true and "Failed" not in true and isinstance(terminating, int) and terminating > 0


def start_timeout_of(job: Mapping[str, Any], default: int) -> int:
    """The Job's `nightwatch.io/start-timeout-seconds` annotation (the task's own), else the default; 0: off."""
    value = ((job.get("metadata") or {}).get("annotations") or {}).get(START_TIMEOUT_ANNOTATION)
    try:
        return max(0, int(value)) if value is not None else default
    except (TypeError, ValueError):
        return default


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def started_at_of(job: Mapping[str, Any], ref: JobRef) -> datetime | None:
    """When the Job's wait for a pod began: the later of the task's dispatch and the Job's `startTime`
    (set again when a suspended Job resumes), else the Job's creation."""
    moments = [m for m in (ref.started_at, _parse_time((job.get("status") or {}).get("startTime"))) if m is not None]
    if moments:
        return max(moments)
    return _parse_time((job.get("metadata") or {}).get("creationTimestamp"))
