"""SubmitTask: the one way a task enters the table through nightwatch (CLI, HTTP)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from nightwatch.domain.model import Task
from nightwatch.domain.ports import Clock, NewTask, TaskCommands
from nightwatch.domain.schedules import aware_run_at
from nightwatch.domain.submission import SubmissionPolicy, validate_submission

logger = logging.getLogger(__name__)


class SubmitTask:
    """Validate a task as dispatch will (`validate_submission`), then insert it as `Normal`.

    Raises InvalidTaskSpec (its `problems` name every bad field), DuplicateTask, RetryableError.
    Nothing is stored when validation fails.
    """

    def __init__(
        self,
        repository: TaskCommands,
        clock: Clock,
        policy: SubmissionPolicy,
        *,
        nudge: Callable[[], None] = lambda: None,
    ) -> None:
        """`nudge`: tells the leader's dispatch there is work now (in-process and over Redis); a
        failing nudge only costs latency (the dispatch poll finds the task), so it never fails a submit."""
        self._repository = repository
        self._clock = clock
        self._policy = policy
        self._nudge = nudge

    def __call__(
        self,
        name: str,
        namespace: str,
        info: str | Mapping[str, Any],
        user_id: int = 0,
        *,
        run_at: datetime | None = None,
        priority: object = None,
    ) -> Task:
        """`run_at`: not dispatched before then (an aware time; InvalidTaskSpec naming `run_at` if naive).
        `priority`: higher first (InvalidTaskSpec naming `priority` when out of bounds); None: the task's
        profile's `priority`, else 0."""
        valid = validate_submission(name, namespace, info, self._policy, priority=priority)
        when = aware_run_at(run_at) if run_at is not None else None
        new = NewTask(valid.name, valid.namespace, valid.info, user_id, run_at=when, priority=valid.priority)
        task = self._repository.add(new, self._clock.now())
        try:
            self._nudge()
        except Exception:
            logger.warning(
                "could not nudge dispatch about task %s; the dispatch poll will find it", task.id, exc_info=True
            )
        return task
