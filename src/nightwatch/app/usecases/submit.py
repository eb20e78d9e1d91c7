"""SubmitTask: the one way a task enters the table through nightwatch (CLI, HTTP)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from nightwatch.domain.jobspec import JobSpec
from nightwatch.domain.model import Task
from nightwatch.domain.names import check_dns1123_label, check_namespace_allowed
from nightwatch.domain.ports import Clock, NewTask, TaskRepository


class SubmitTask:
    """Validate a task as dispatch will, then insert it as `Normal`.

    Raises InvalidTaskSpec (bad name, namespace or info, with a message that says which),
    DuplicateTask, RetryableError. Nothing is stored when validation fails.
    """

    def __init__(self, repository: TaskRepository, clock: Clock, allowed_namespaces: frozenset[str]) -> None:
        self._repository = repository
        self._clock = clock
        self._allowed = allowed_namespaces

    def __call__(self, name: str, namespace: str, info: str | Mapping[str, Any], user_id: int = 0) -> Task:
        check_dns1123_label(name, "task name")
        check_namespace_allowed(namespace, self._allowed)
        raw = info if isinstance(info, str) else json.dumps(info, separators=(",", ":"))
        JobSpec.from_info(raw)
        return self._repository.add(NewTask(name, namespace, raw, user_id), self._clock.now())
