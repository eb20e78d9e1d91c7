"""What the CLI's submit, list, show and cancel need, whether they go to the database or to a server.

`TaskGateway` is that small protocol. `LocalGateway` serves it from the container's use cases and
read side (the database directly); `ApiClient` (`app/client.py`) from a replica's REST API. Both
list newest first through the same pages of summaries (`TaskQueries.list_newest`, which the API
serves too: no `info`, bounded text; `get` has the whole task), and both raise the same domain errors, so the CLI's output and exit codes do not depend on the mode.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from nightwatch.app.usecases.cancel import RequestCancel
from nightwatch.app.usecases.queues import ExplainWaiting
from nightwatch.app.usecases.submit import SubmitTask
from nightwatch.domain.model import Task, TaskId, TaskStatus
from nightwatch.domain.ports import TaskFilter, TaskQueries, TaskSummary

PAGE_LIMIT = 500
"""The largest page asked for at once (the API's own limit)."""

C = TypeVar("C")
"""Where a page starts: an id to list below (the database), or a server's page cursor."""


class TaskGateway(Protocol):
    def submit(self, name: str, namespace: str, info: str | Mapping[str, Any], *, priority: int = 0) -> Task:
        """Submit a task as the gateway's user. Raises InvalidTaskSpec (`problems` names every bad
        field), DuplicateTask, RetryableError; ApiRefused through a server."""
        ...

    def list_tasks(
        self, statuses: Sequence[TaskStatus] = (), *, before_id: int | None = None, limit: int = 100
    ) -> list[TaskSummary]:
        """Summaries of the newest `limit` tasks in any of `statuses` (all when empty) with an id below
        `before_id` (any when None), newest first. Raises RetryableError."""
        ...

    def get(self, task_id: int) -> Task:
        """Raises TaskNotFound, PermanentError (a row nightwatch cannot read), RetryableError."""
        ...

    def show(self, task_id: int) -> tuple[Task, str | None]:
        """The task and why it waits (None: it does not, or it is not Normal). Raises as `get`."""
        ...

    def cancel(self, task_id: int) -> Task:
        """Request cancellation. Raises TaskNotFound, InvalidTransition (already ended), RetryableError."""
        ...


def newest_first(
    page: Callable[[C | None, int], tuple[Sequence[TaskSummary], C | None]], start: C | None, limit: int
) -> list[TaskSummary]:
    """Up to `limit` summaries from consecutive newest-first pages: `page(start, size)` returns a page
    and where the next one starts (None at the end). A page can hold fewer tasks than asked
    (unreadable rows are skipped), so reading goes on until `limit` or the end."""
    tasks: list[TaskSummary] = []
    while len(tasks) < limit:
        found, start = page(start, min(PAGE_LIMIT, limit - len(tasks)))
        tasks += found
        if start is None:
            break
    return tasks[:limit]


class LocalGateway:
    """The database directly, through the same use cases and read side as the REST API."""

    def __init__(
        self,
        submit: SubmitTask,
        cancel: RequestCancel,
        queries: TaskQueries,
        *,
        user_id: int = 0,
        waiting: ExplainWaiting | None = None,
    ) -> None:
        self._submit = submit
        self._cancel = cancel
        self._queries = queries
        self._user_id = user_id
        self._waiting = waiting

    def submit(self, name: str, namespace: str, info: str | Mapping[str, Any], *, priority: int = 0) -> Task:
        return self._submit(name, namespace, info, user_id=self._user_id, priority=priority)

    def list_tasks(
        self, statuses: Sequence[TaskStatus] = (), *, before_id: int | None = None, limit: int = 100
    ) -> list[TaskSummary]:
        where = TaskFilter(statuses=frozenset(statuses) if statuses else None)

        def page(before: int | None, size: int) -> tuple[Sequence[TaskSummary], int | None]:
            found = self._queries.list_newest(where, before_id=before, limit=size)
            return found.tasks, found.next_before_id

        return newest_first(page, before_id, limit)

    def get(self, task_id: int) -> Task:
        return self._queries.get(TaskId(task_id))

    def show(self, task_id: int) -> tuple[Task, str | None]:
        task = self.get(task_id)
        return task, self._waiting.detail(task) if self._waiting is not None else None

    def cancel(self, task_id: int) -> Task:
        return self._cancel(TaskId(task_id))
