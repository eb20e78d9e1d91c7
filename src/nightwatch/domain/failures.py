"""Failure classes: why an attempt failed, decided from the evidence the adapters report.

| class            | evidence                                                                         |
|------------------|----------------------------------------------------------------------------------|
| `infrastructure` | a pod `DisruptionTarget` (PreemptionByScheduler, DeletionByTaintManager,           |
|                  | EvictionByEvictionAPI, TerminationByKubelet), a lost node, the start timeout      |
|                  | with no config reason, a Job deleted behind nightwatch's back (JobMissing)        |
| `oom`            | the container was OOMKilled                                                      |
| `exit_code`      | a non-zero exit code (the code is kept; None when no pod was left to read)       |
| `deadline`       | the Job's `activeDeadlineSeconds` passed (DeadlineExceeded)                     |
| `config`         | the image cannot be pulled, an invalid spec, pods refused by admission (FailedCreate)|

`BackoffLimitExceeded` (and any other Job failure reason) is classified by the evidence underneath it,
in the order deadline, disruption, OOM, exit code. The adapters only report evidence
(`JobObservation.exit_code/oom/disruption`, the reasons); the rule is here, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from nightwatch.domain.observation import JobObservation, JobPhase


class FailureClass(StrEnum):
    INFRASTRUCTURE = "infrastructure"
    OOM = "oom"
    EXIT_CODE = "exit_code"
    DEADLINE = "deadline"
    CONFIG = "config"


CONFIG_REASONS = (
    "ImagePullBackOff",
    "ErrImagePull",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "FailedCreate",
    "InvalidName",
    "JobInvalid",
)
"""Reasons (as they start a message) that say the spec or the cluster's admission refuse this task: a
new attempt would meet the same refusal."""


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed attempt, classified: the class, and the evidence a person reads in the message."""

    failure_class: FailureClass
    evidence: str
    exit_code: int | None = None

    def describe(self) -> str:
        return f"{self.failure_class} failure: {self.evidence}" if self.evidence else f"{self.failure_class} failure"


def classify(observation: JobObservation) -> Failure:
    """The class of a failed observation (`observation.failed`), with its evidence."""
    summary = observation.summary
    if observation.phase is JobPhase.MISSING:
        if observation.reason == "InvalidName":  # a row naming a namespace no Job can live in
            return Failure(FailureClass.CONFIG, summary)
        return Failure(FailureClass.INFRASTRUCTURE, summary)
    if observation.reason == "DeadlineExceeded":
        return Failure(FailureClass.DEADLINE, summary, observation.exit_code)
    if observation.reason == "StartTimeout":
        # No pod ran in time: a config reason (an image that cannot be pulled, pods refused) stays a
        # config failure; none, or Unschedulable, is the cluster's (capacity, a lost node).
        last = observation.message.partition("last known reason: ")[2]
        if last.startswith(CONFIG_REASONS):
            return Failure(FailureClass.CONFIG, summary)
        return Failure(FailureClass.INFRASTRUCTURE, summary)
    if observation.disruption:
        return Failure(FailureClass.INFRASTRUCTURE, f"pod disrupted ({observation.disruption}): {summary}")
    if observation.oom:
        return Failure(FailureClass.OOM, summary, observation.exit_code)
    if observation.reason.startswith(CONFIG_REASONS):
        return Failure(FailureClass.CONFIG, summary)
    return Failure(FailureClass.EXIT_CODE, summary, observation.exit_code)
