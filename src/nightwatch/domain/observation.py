"""What the cluster says about a Job, reduced to the one fact the state machine needs.

The rule (pure): a true `Failed` or `FailureTarget` condition means failure; a true `Complete` or
`SuccessCriteriaMet` condition means success (Kubernetes >= 1.31 sets the *Target/*Met conditions
first, so they are terminal as soon as they appear); ready pods mean running; anything else is
still pending, possibly with a diagnosis (ImagePullBackOff, Unschedulable, FailedCreate...): a pod that
exists but is not ready (still pulling its image, unschedulable) does not make a task Running. A true
`Suspended` condition (Kueue preemption, `kubectl patch ... suspend: true`: the Job's pods are
deleted) is `SUSPENDED`, whatever the task's status was. A Job that does not exist at all is `MISSING`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class JobPhase(StrEnum):
    MISSING = "missing"
    PENDING = "pending"
    SUSPENDED = "suspended"
    ACTIVE = "active"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


SUCCESS_CONDITIONS = ("SuccessCriteriaMet", "Complete")
MISSING_MESSAGE = "the Job was deleted before its outcome was read; outcome unknown"
FAILURE_CONDITIONS = ("FailureTarget", "Failed")
KUEUE_QUEUED_PREFIX = "Queued by Kueue"
"""Starts the message of a task whose Job Kueue holds suspended: such a task is not counted against
nightwatch's own `max_in_flight` (Kueue owns its admission)."""
KUEUE_WAITING_PREFIX = "Waiting for Kueue"
"""Starts the message of a task whose Job Kueue holds suspended when its Kueue mode says Kueue does not
own admission (`owns_admission: false`): such a task still counts against `max_in_flight`."""


@dataclass(frozen=True, slots=True)
class JobCondition:
    type: str
    status: str = "True"
    reason: str = ""
    message: str = ""

    @property
    def is_true(self) -> bool:
        return self.status == "True"


DISRUPTION_REASONS = frozenset(
    {"PreemptionByScheduler", "DeletionByTaintManager", "EvictionByEvictionAPI", "TerminationByKubelet"}
)
"""The reasons of a pod's `DisruptionTarget` condition: the pod was taken away, not failed by its code."""


@dataclass(frozen=True, slots=True)
class JobObservation:
    """A Job's phase, its reason and message, and for a failure the evidence the adapter saw
    underneath (the domain classifies it: `failures.classify`)."""

    phase: JobPhase
    reason: str = ""
    message: str = ""
    exit_code: int | None = None
    """The non-zero exit code of the failed attempt's container, if one was read."""
    oom: bool = False
    """The container was OOMKilled."""
    disruption: str = ""
    """Why the pod was taken away: a `DisruptionTarget` reason (PreemptionByScheduler...), or NodeLost."""
    queued_by_kueue: bool = False
    """A suspended Job that Kueue admits (it has a queue-name label): it waits for Kueue, not for us."""
    kueue_counted: bool = False
    """Kueue holds it, but its Kueue mode says Kueue does not own admission: it keeps its nightwatch slot."""

    @property
    def failed(self) -> bool:
        """The attempt is over without success (a failed Job, or a Job gone before its outcome)."""
        return self.phase in (JobPhase.FAILED, JobPhase.MISSING)

    @property
    def summary(self) -> str:
        """`reason: message`, or whichever of the two is set."""
        return ": ".join(part for part in (self.reason, self.message) if part)

    @classmethod
    def missing(cls, namespace: str, job_name: str) -> JobObservation:
        """A task's Job is gone: someone deleted it (or put another task's Job in its place) before its end
        was seen. The task must still end (Failed), but the message claims no failure of the task's own:
        nightwatch's finalizer keeps every Job until its outcome is stored, so this is a Job deleted behind
        its back (the finalizer removed by hand, or deleted before it finished) and the outcome is unknown.
        The row names the Job (`job_name`, namespace)."""
        return cls(JobPhase.MISSING, "JobMissing", MISSING_MESSAGE)

    @classmethod
    def start_timed_out(cls, timeout_seconds: int, last_reason: str) -> JobObservation:
        """No pod of the Job ran within its start timeout (`startTimeoutSeconds`): the runner deleted it.
        `last_reason` is the last known reason it did not start (FailedCreate, ImagePullBackOff...)."""
        why = f"; last known reason: {last_reason}" if last_reason else "; no reason was reported"
        return cls(
            JobPhase.FAILED,
            "StartTimeout",
            f"no pod was running {timeout_seconds} s after the Job started, so it was deleted{why}",
        )

    @property
    def suspended_message(self) -> str:
        """The message of a task whose Job is suspended: `Suspended: <reason>: <message>`, or
        `Queued by Kueue: <reason>: <message>` when Kueue holds it (`Waiting for Kueue: ...` when it
        still counts against nightwatch's limits: `kueue_counted`)."""
        label = "Suspended"
        if self.queued_by_kueue:
            label = KUEUE_WAITING_PREFIX if self.kueue_counted else KUEUE_QUEUED_PREFIX
        return f"{label}: {self.summary}" if self.summary else label

    @classmethod
    def from_job_status(
        cls,
        conditions: Iterable[JobCondition],
        *,
        active: int = 0,
        ready: int | None = None,
        succeeded: int = 0,
        failed: int = 0,
        diagnosis: str = "",
        exit_code: int | None = None,
        oom: bool = False,
        disruption: str = "",
    ) -> JobObservation:
        """Classify a Job's status. `diagnosis` is a pod-level reason (why a Job is still pending, or how
        its container ended); `exit_code`, `oom` and `disruption` the evidence of a failure."""
        true = {c.type: c for c in conditions if c.is_true}
        for kind in FAILURE_CONDITIONS:
            if kind in true:
                cond = true[kind]
                detail = cond.message or (f"{failed} pod(s) failed" if failed else "")
                if diagnosis:
                    detail = f"{detail} ({diagnosis})" if detail else diagnosis
                return cls(
                    JobPhase.FAILED, cond.reason or kind, detail, exit_code=exit_code, oom=oom, disruption=disruption
                )
        for kind in SUCCESS_CONDITIONS:
            if kind in true:
                cond = true[kind]
                return cls(JobPhase.SUCCEEDED, cond.reason or kind, cond.message or f"{succeeded} pod(s) succeeded")
        if "Suspended" in true:
            cond = true["Suspended"]
            return cls(JobPhase.SUSPENDED, cond.reason or "Suspended", cond.message)
        # `active` counts pods that are pending too (an image that cannot be pulled is "active");
        # `ready` (Kubernetes >= 1.24) says a container really runs. Without it, active must do.
        if active > 0 and (ready is None or ready > 0):
            return cls(JobPhase.ACTIVE, "", f"{active} pod(s) active, {ready if ready is not None else '?'} ready")
        return cls(JobPhase.PENDING, "", diagnosis)
