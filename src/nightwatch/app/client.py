"""A small client of the REST API, for the CLI's `--server URL --token T` mode.

It speaks in the domain's terms: tasks come back as `Task` entities and HTTP errors become the
domain errors the CLI already turns into exit codes (404 TaskNotFound, 422 InvalidTaskSpec, 409
DuplicateTask or InvalidTransition, 5xx and network failures RetryableError).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx

from nightwatch.domain.errors import (
    DuplicateTask,
    InvalidTaskSpec,
    InvalidTransition,
    PermanentError,
    RetryableError,
    TaskNotFound,
)
from nightwatch.domain.model import Task, TaskId, TaskStatus

API = "/api/v1"
PAGE_LIMIT = 500


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

    def submit(self, name: str, namespace: str, info: dict[str, Any]) -> Task:
        """Raises InvalidTaskSpec (every bad field, one line each), DuplicateTask, ApiRefused, RetryableError."""
        body = {"name": name, "namespace": namespace, "info": info}
        return _task(self._call("POST", f"{API}/tasks", json=body, conflict=DuplicateTask))

    def list_tasks(self, statuses: Sequence[TaskStatus] = (), *, limit: int = 100) -> list[Task]:
        """The newest `limit` tasks in any of `statuses` (all when empty), newest first, page by page."""
        tasks: list[Task] = []
        cursor: str | None = None
        while len(tasks) < limit:
            params: dict[str, Any] = {"limit": min(PAGE_LIMIT, limit - len(tasks))}
            if statuses:
                params["status"] = [str(s) for s in statuses]
            if cursor is not None:
                params["cursor"] = cursor
            page = self._call("GET", f"{API}/tasks", params=params)
            tasks += [_task(item) for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        return tasks

    def get(self, task_id: int) -> Task:
        return _task(self._call("GET", f"{API}/tasks/{task_id}"))

    def cancel(self, task_id: int) -> Task:
        return _task(self._call("POST", f"{API}/tasks/{task_id}/cancel", conflict=InvalidTransition))

    def _call(self, method: str, path: str, *, conflict: type[PermanentError] = PermanentError, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise RetryableError(f"cannot reach {self.server}: {exc}") from None
        if response.is_success:
            return response.json()
        detail = _detail(response)
        code = response.status_code
        if code == 404:
            raise TaskNotFound(detail)
        if code == 409:
            raise conflict(detail)
        if code == 422:
            raise InvalidTaskSpec(detail)
        if code >= 500 or code == 429:
            raise RetryableError(f"{self.server} answered {code}: {detail}")
        raise ApiRefused(f"{self.server} refused the request ({code}): {detail}")


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json()["detail"]
    except (ValueError, KeyError, TypeError):
        return response.text.strip() or response.reason_phrase
    if isinstance(detail, list):  # 422: one line per field, named as in the request body
        return "\n".join(_field_line(error) for error in detail)
    return str(detail)


def _field_line(error: Any) -> str:
    if not isinstance(error, dict):
        return str(error)
    loc = [str(part) for part in error.get("loc", [])]
    where = ".".join(loc[1:] if loc[:1] == ["body"] else loc) or "request"
    return f"{where}: {error.get('msg', '')}"


def _task(data: dict[str, Any]) -> Task:
    return Task(
        id=TaskId(int(data["id"])),
        name=data["name"],
        namespace=data["namespace"],
        info=data["info"],
        status=TaskStatus(data["status"]),
        user_id=int(data["user_id"]),
        message=data["message"],
        job_name=data["job_name"],
        version=int(data.get("version", 0)),
        cancel_requested=bool(data["cancel_requested"]),
        created_at=_when(data["created_at"]),
        started_at=_when(data["started_at"]),
        finished_at=_when(data["finished_at"]),
    )


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
