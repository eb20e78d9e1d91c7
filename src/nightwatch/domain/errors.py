"""The domain's error types, split into retryable and permanent (like Kopf's Temporary/Permanent).

Adapters translate library exceptions into these, so use cases never see SQLAlchemy, redis or
kubernetes exceptions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class NightwatchError(Exception):
    """Base of every error nightwatch raises on purpose."""


class RetryableError(NightwatchError, RuntimeError):
    """A transient failure (network, 5xx, 429, deadlock): try again later, change nothing."""


class PermanentError(NightwatchError, ValueError):
    """Retrying will not help: the input or the state is wrong."""


class InvalidTransition(PermanentError):
    """A status change the state machine does not allow (e.g. anything out of a terminal state)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a submitted task: where (`loc`, e.g. `("info", "env", 0, "name")`) and why."""

    loc: tuple[str | int, ...]
    message: str


class InvalidTaskSpec(PermanentError):
    """A task's name, namespace or `info` cannot become a Job; the message says why.

    `problems` has one entry per field that is wrong (the whole message under `info` when the
    raiser did not say which field).
    """

    def __init__(self, message: str, problems: Iterable[Problem] = ()) -> None:
        super().__init__(message)
        self.problems: tuple[Problem, ...] = tuple(problems) or (Problem(("info",), message),)


class JobRefused(PermanentError):
    """The runner refused to create this task's Job for good: retrying the same launch will not help.

    Raised as such for a permanent answer the runner does not classify further (e.g. a 400, or a
    404 for a namespace that does not exist); the subclasses name the cases it does tell apart.
    """


class ForeignJob(JobRefused):
    """A Job of that name exists that nightwatch did not create for this task (no or another task-id)."""


class JobInvalid(JobRefused):
    """The Job spec is invalid: the API server answered 422, or the local runner cannot run it.

    `problems` has one entry per cause the API server listed (`loc` is `(field,)`, the API's
    dotted field path, or `()` when the cause names no field); empty when it listed none.
    """

    def __init__(self, message: str, problems: Iterable[Problem] = ()) -> None:
        super().__init__(message)
        self.problems: tuple[Problem, ...] = tuple(problems)


class JobForbidden(JobRefused):
    """The API server answered 403 Forbidden for this Job for good: RBAC, or an admission plugin that
    refuses it as it is (a webhook). The 403s that go away are `AdmissionDeferred` instead."""


class AdmissionDeferred(RetryableError):
    """Admission refused the Job for now, not for what it is: nothing is wrong with the task.

    `reason` is `QUOTA` (ResourceQuota: "exceeded quota", until Jobs finish or the quota grows) or
    `NOT_READY` (an admission plugin's caches are not synced yet, just after an API server starts).
    The task stays Normal and is launched again later, with backoff per `namespace`.
    """

    QUOTA = "quota"
    NOT_READY = "not-ready"

    def __init__(self, message: str, *, namespace: str, reason: str) -> None:
        super().__init__(message)
        self.namespace = namespace
        self.reason = reason


class LogsUnavailable(NightwatchError, LookupError):
    """A Job's output cannot be read now: its pod does not exist yet, or it is gone (and nothing was kept)."""


class TaskNotFound(PermanentError, LookupError):
    """No task has that id."""


class DuplicateTask(PermanentError):
    """A task with that name already exists in that namespace."""


class LeadershipLost(NightwatchError):
    """This replica is no longer the leader (lease lost or fencing epoch superseded): stop writing."""


class ScheduleNotFound(PermanentError, LookupError):
    """No schedule with that id or name (or not one the caller may see)."""


class DuplicateSchedule(PermanentError):
    """A schedule of that name exists in that namespace."""


class InvalidSchedule(InvalidTaskSpec):
    """A schedule that cannot be stored: `problems` name every bad field (cron, timezone, info, ...).

    A subclass of InvalidTaskSpec so the API answers 422 with `loc` per field and the CLI exits 2,
    through the paths a refused task already takes."""


class QueueNotFound(PermanentError, LookupError):
    """No queue of that name is configured."""
