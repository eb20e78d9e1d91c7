"""SubmitTask: the one way a task enters the table through nightwatch (CLI, HTTP)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nightwatch.domain.model import Task
from nightwatch.domain.ports import Clock, NewTask, TaskCommands
from nightwatch.domain.submission import SubmissionPolicy, validate_submission


class SubmitTask:
    """Validate a task as dispatch will (`validate_submission`), then insert it as `Normal`.

    Raises InvalidTaskSpec (its `problems` name every bad field), DuplicateTask, RetryableError.
    Nothing is stored when validation fails.
    """

    def __init__(self, repository: TaskCommands, clock: Clock, policy: SubmissionPolicy) -> None:
        self._repository = repository
        self._clock = clock
        self._policy = policy

    def __call__(
        self, name: str, namespace: str, info: str | Mapping[str, Any], user_id: int = 0, *, priority: object = 0
    ) -> Task:
        valid = validate_submission(name, namespace, info, self._policy, priority=priority)
        new = NewTask(valid.name, valid.namespace, valid.info, user_id, priority=valid.priority)
        return self._repository.add(new, self._clock.now())
