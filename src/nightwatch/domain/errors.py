"""The domain's error types, split into retryable and permanent (like Kopf's Temporary/Permanent).

Adapters translate library exceptions into these, so use cases never see SQLAlchemy, redis or
kubernetes exceptions.
"""

from __future__ import annotations


class NightwatchError(Exception):
    """Base of every error nightwatch raises on purpose."""


class RetryableError(NightwatchError, RuntimeError):
    """A transient failure (network, 5xx, 429, deadlock): try again later, change nothing."""


class PermanentError(NightwatchError, ValueError):
    """Retrying will not help: the input or the state is wrong."""


class InvalidTransition(PermanentError):
    """A status change the state machine does not allow (e.g. anything out of a terminal state)."""


class InvalidTaskSpec(PermanentError):
    """A task's name, namespace or `info` cannot become a Job; the message says why."""


class JobConflict(PermanentError):
    """The API server refused the Job for good (foreign Job of that name, 422 Invalid, 403 Forbidden)."""


class TaskNotFound(PermanentError, LookupError):
    """No task has that id."""


class DuplicateTask(PermanentError):
    """A task with that name already exists in that namespace."""


class LeadershipLost(NightwatchError):
    """This replica is no longer the leader (lease lost or fencing epoch superseded): stop writing."""
