"""What the CLI's submit, list, show and cancel need, whether they go to the database or to a server.

`TaskGateway` is that small protocol. `LocalGateway` serves it from the container's use cases and
read side (the database directly); `ApiClient` (`app/client.py`) from a replica's REST API. Both
list newest first through the same pages of summaries (`TaskQueries.list_newest`, which the API
serves too: no `info`, bounded text; `get` has the whole task), and both raise the same domain errors, so the CLI's output and exit codes do not depend on the mode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from nightwatch.app.usecases.cancel import RequestCancel
from nightwatch.app.usecases.logs import ReadTaskLogs, as_utf8, decode
from nightwatch.app.usecases.queues import ExplainWaiting
from nightwatch.app.usecases.render import RenderJob
from nightwatch.app.usecases.schedules import ScheduleCommands, ScheduleRequest, ScheduleView
from nightwatch.app.usecases.submit import SubmitTask
from nightwatch.domain.errors import PermanentError, TaskNotFound
from nightwatch.domain.model import Task, TaskEvent, TaskId, TaskStatus
from nightwatch.domain.ports import TaskFilter, TaskQueries, TaskSummary

PAGE_LIMIT = 500
"""The largest page asked for at once (the API's own limit)."""

C = TypeVar("C")
"""Where a page starts: an id to list below (the database), or a server's page cursor."""


class TaskGateway(Protocol):
    def submit(
        self,
        name: str,
        namespace: str,
        info: str | Mapping[str, Any],
        *,
        run_at: datetime | None = None,
        priority: int | None = None,
    ) -> Task:
        """Submit a task as the gateway's user, not dispatched before `run_at` when given, at `priority`
        (None: the task's profile's `priority`, else 0).
        Raises InvalidTaskSpec (`problems` names every bad
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

    def render(
        self, task_id: int | None = None, *, name: str | None = None, namespace: str = "default", info: Any = None
    ) -> dict[str, Any]:
        """The Job manifest of a stored task (`task_id`), or of `info` not yet submitted. Raises
        TaskNotFound, InvalidTaskSpec (every bad field), RetryableError; ApiRefused through a server."""
        ...

    def events(self, task_id: int) -> list[TaskEvent]:
        """The task's history, oldest first. Raises TaskNotFound, RetryableError."""

    def logs(
        self, task_id: int, *, follow: bool = False, tail: int | None = None, attempt: int | None = None
    ) -> Iterator[bytes]:
        """A task's output (UTF-8; invalid bytes as U+FFFD); with `follow`, until the task ends.
        Raises TaskNotFound, BadAttempt, RetryableError."""


class ScheduleGateway(Protocol):
    """The CLI's `schedule` commands, on the database or through a server; schedules are named by
    namespace and name. Raise InvalidSchedule (every bad field), DuplicateSchedule, ScheduleNotFound,
    RetryableError; ApiRefused through a server."""

    def create_schedule(self, request: ScheduleRequest) -> ScheduleView: ...

    def list_schedules(self) -> list[ScheduleView]: ...

    def schedule(self, namespace: str, name: str) -> ScheduleView: ...

    def pause_schedule(self, namespace: str, name: str) -> ScheduleView: ...

    def resume_schedule(self, namespace: str, name: str) -> ScheduleView: ...

    def delete_schedule(self, namespace: str, name: str) -> None: ...

    def trigger_schedule(self, namespace: str, name: str) -> Task: ...

    def upcoming(self, namespace: str, name: str, after: datetime | None, count: int) -> tuple[str, list[datetime]]:
        """The schedule's zone and its next `count` fire times after `after` (now when None)."""
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
        render: RenderJob | None = None,
        logs: ReadTaskLogs | None = None,
        waiting: ExplainWaiting | None = None,
    ) -> None:
        self._render = render
        self._submit = submit
        self._cancel = cancel
        self._queries = queries
        self._user_id = user_id
        self._logs = logs
        self._waiting = waiting

    def submit(
        self,
        name: str,
        namespace: str,
        info: str | Mapping[str, Any],
        *,
        run_at: datetime | None = None,
        priority: int | None = None,
    ) -> Task:
        return self._submit(name, namespace, info, user_id=self._user_id, run_at=run_at, priority=priority)

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

    def render(
        self, task_id: int | None = None, *, name: str | None = None, namespace: str = "default", info: Any = None
    ) -> dict[str, Any]:
        if self._render is None:
            raise PermanentError("rendering is not available here")
        if task_id is not None:
            return self._render.task(TaskId(task_id))
        return self._render.preview(name, namespace, info)

    def events(self, task_id: int) -> list[TaskEvent]:
        return self._queries.list_events(TaskId(task_id))

    def logs(
        self, task_id: int, *, follow: bool = False, tail: int | None = None, attempt: int | None = None
    ) -> Iterator[bytes]:
        if self._logs is None:
            raise TaskNotFound("no task output here")
        if follow:
            return as_utf8(self._logs.follow(TaskId(task_id), tail=tail, attempt=attempt))
        return iter([decode(self._logs.read(self._queries.get(TaskId(task_id)), tail=tail, attempt=attempt)).encode()])


class LocalScheduleGateway:
    """Schedules on the database directly, through the same use case as the REST API."""

    def __init__(self, commands: ScheduleCommands, *, user_id: int = 0) -> None:
        self._commands = commands
        self._user_id = user_id

    def create_schedule(self, request: ScheduleRequest) -> ScheduleView:
        return self._commands.view(self._commands.create(request, user_id=self._user_id))

    def list_schedules(self) -> list[ScheduleView]:
        return [self._commands.view(s, history=False) for s in self._commands.list_schedules()]

    def schedule(self, namespace: str, name: str) -> ScheduleView:
        return self._commands.view(self._commands.find(namespace, name))

    def pause_schedule(self, namespace: str, name: str) -> ScheduleView:
        return self._commands.view(self._commands.pause(self._commands.find(namespace, name)))

    def resume_schedule(self, namespace: str, name: str) -> ScheduleView:
        return self._commands.view(self._commands.resume(self._commands.find(namespace, name)))

    def delete_schedule(self, namespace: str, name: str) -> None:
        self._commands.delete(self._commands.find(namespace, name))

    def trigger_schedule(self, namespace: str, name: str) -> Task:
        return self._commands.trigger(self._commands.find(namespace, name))

    def upcoming(self, namespace: str, name: str, after: datetime | None, count: int) -> tuple[str, list[datetime]]:
        found = self._commands.find(namespace, name)
        return found.timezone, self._commands.upcoming(found.cron, found.timezone, after, count)
