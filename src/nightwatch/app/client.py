"""A small client of the REST API, for the CLI's `--server URL --token T` mode.

It speaks in the domain's terms and implements the CLI's `TaskGateway` (`app/gateway.py`): tasks
come back as `Task` entities (listed ones as `TaskSummary`s, as the API lists them), and HTTP statuses become domain errors through the server's own table
(`app/errors.py`): 404 TaskNotFound, 422 InvalidTaskSpec with its problems, 409 DuplicateTask for a
submit and InvalidTransition for a cancel, 503 (and any other 5xx, 429, network failures)
RetryableError; anything else the server refused is ApiRefused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx

from nightwatch.app.cursor import encode_cursor
from nightwatch.app.errors import error_for, problem_line, problems_of
from nightwatch.app.gateway import newest_first
from nightwatch.domain.errors import (
    DuplicateTask,
    InvalidTaskSpec,
    InvalidTransition,
    NightwatchError,
    PermanentError,
    QueueNotFound,
    RetryableError,
    TaskNotFound,
)
from nightwatch.domain.jobspec import parse_info
from nightwatch.domain.model import Task, TaskId, TaskStatus
from nightwatch.domain.ports import TaskSummary

API = "/api/v1"


class ApiRefused(PermanentError):
    """The server refused the request for good (no or wrong token, another user's task, too large)."""


class ApiClient:
    def __init__(
        self, server: str, token: str | None, *, timeout: float = 30.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=server.rstrip("/"), headers=headers, timeout=timeout, transport=transport)
        self.server = server

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object | type[BaseException] | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def submit(self, name: str, namespace: str, info: str | Mapping[str, Any], *, priority: int = 0) -> Task:
        """As the token's user. `info` text is parsed into the object the API takes, by the domain's
        rules. Raises InvalidTaskSpec (every bad field), DuplicateTask, ApiRefused, RetryableError."""
        body = {
            "name": name,
            "namespace": namespace,
            "info": parse_info(info) if isinstance(info, str) else info,
            "priority": priority,
        }
        return _task(self._call("POST", f"{API}/tasks", json=body, conflict=DuplicateTask))

    def list_tasks(
        self, statuses: Sequence[TaskStatus] = (), *, before_id: int | None = None, limit: int = 100
    ) -> list[TaskSummary]:
        """Summaries of the newest `limit` tasks in any of `statuses` (all when empty) with an id below
        `before_id`, newest first, page by page (the first page's cursor built as the API builds its own)."""

        def page(cursor: str | None, size: int) -> tuple[Sequence[TaskSummary], str | None]:
            params: dict[str, Any] = {"limit": size}
            if statuses:
                params["status"] = [str(s) for s in statuses]
            if cursor is not None:
                params["cursor"] = cursor
            found = self._call("GET", f"{API}/tasks", params=params)
            return [_summary(item) for item in found["items"]], found["next_cursor"]

        return newest_first(page, encode_cursor(before_id) if before_id is not None else None, limit)

    def get(self, task_id: int) -> Task:
        return _task(self._call("GET", f"{API}/tasks/{task_id}"))

    def show(self, task_id: int) -> tuple[Task, str | None]:
        data = self._call("GET", f"{API}/tasks/{task_id}")
        return _task(data), data.get("waiting")

    def queues(self) -> list[dict[str, Any]]:
        """GET /api/v1/queues (an admin token). Raises ApiRefused, RetryableError."""
        return list(self._call("GET", f"{API}/queues", missing=QueueNotFound))

    def set_paused(self, name: str, paused: bool) -> dict[str, Any]:
        """Pause or resume a queue (an admin token). Raises QueueNotFound, ApiRefused, RetryableError."""
        return dict(self._call("POST", f"{API}/queues/{name}/{'pause' if paused else 'resume'}", missing=QueueNotFound))

    def cancel(self, task_id: int) -> Task:
        return _task(self._call("POST", f"{API}/tasks/{task_id}/cancel", conflict=InvalidTransition))

    def _call(
        self,
        method: str,
        path: str,
        *,
        conflict: type[PermanentError] = PermanentError,
        missing: type[PermanentError] = TaskNotFound,
        **kwargs: Any,
    ) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise RetryableError(f"cannot reach {self.server}: {exc}") from None
        if response.is_success:
            return response.json()
        raise self._error(response, missing if response.status_code == 404 else conflict)

    def _error(self, response: httpx.Response, conflict: type[PermanentError]) -> NightwatchError:
        code = response.status_code
        detail = _detail(response)
        if code == 422:
            problems = problems_of(detail)
            return InvalidTaskSpec("\n".join(problem_line(p) for p in problems), problems)
        text = str(detail)
        if code >= 500 or code == 429:
            return RetryableError(f"{self.server} answered {code}: {text}")
        return error_for(code, text, expected=conflict) or ApiRefused(
            f"{self.server} refused the request ({code}): {text}"
        )


def _detail(response: httpx.Response) -> object:
    """The body's `detail` (a message, or a 422's list of field errors); the text of any other body."""
    try:
        return response.json()["detail"]
    except (ValueError, KeyError, TypeError):
        return response.text.strip() or response.reason_phrase


def _task(data: dict[str, Any]) -> Task:
    return Task(info=data["info"], **_listed_fields(data))  # Task has every listed field too


def _summary(data: dict[str, Any]) -> TaskSummary:
    return TaskSummary(**_listed_fields(data))


def _listed_fields(data: dict[str, Any]) -> dict[str, Any]:
    """Every field but `info`, from a task's or a summary's JSON (they share these)."""
    return {
        "id": TaskId(int(data["id"])),
        "name": data["name"],
        "namespace": data["namespace"],
        "status": TaskStatus(data["status"]),
        "user_id": int(data["user_id"]),
        "message": data["message"],
        "job_name": data["job_name"],
        "version": int(data.get("version", 0)),
        "cancel_requested": bool(data["cancel_requested"]),
        "created_at": _when(data["created_at"]),
        "started_at": _when(data["started_at"]),
        "finished_at": _when(data["finished_at"]),
        "priority": int(data.get("priority") or 0),
        "next_attempt_at": _when(data.get("next_attempt_at")),
        "run_at": _when(data.get("run_at")),
        "queue": data.get("queue"),
    }


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
