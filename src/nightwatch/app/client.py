"""A small client of the REST API, for the CLI's `--server URL --token T` mode.

It speaks in the domain's terms and implements the CLI's `TaskGateway` (`app/gateway.py`): tasks
come back as `Task` entities (listed ones as `TaskSummary`s, as the API lists them), and HTTP statuses become domain errors through the server's own table
(`app/errors.py`): 404 TaskNotFound, 422 InvalidTaskSpec with its problems, 409 DuplicateTask for a
submit and InvalidTransition for a cancel, 503 (and any other 5xx, 429, network failures)
RetryableError; anything else the server refused is ApiRefused.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx

from nightwatch.app.cursor import encode_cursor
from nightwatch.app.errors import error_for, problem_line, problems_of
from nightwatch.app.gateway import newest_first
from nightwatch.app.usecases.schedules import ScheduleRequest, ScheduleView
from nightwatch.domain.errors import (
    DuplicateSchedule,
    DuplicateTask,
    InvalidTaskSpec,
    InvalidTransition,
    NightwatchError,
    PermanentError,
    QueueNotFound,
    RetryableError,
    ScheduleNotFound,
)
from nightwatch.domain.jobspec import parse_info
from nightwatch.domain.model import Task, TaskEvent, TaskId, TaskStatus
from nightwatch.domain.ports import TaskSummary
from nightwatch.domain.schedules import Concurrency, Schedule, ScheduleId

API = "/api/v1"


class ApiRefused(PermanentError):
    """The server refused the request for good (no or wrong token, another user's task, too large)."""


class _Reconnect(Exception):
    """A retryable answer to a follow (503: the replica's streams are all taken, or it is starting)."""


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

    def submit(
        self,
        name: str,
        namespace: str,
        info: str | Mapping[str, Any],
        *,
        run_at: datetime | None = None,
        priority: int | None = None,
    ) -> Task:
        """As the token's user. `info` text is parsed into the object the API takes, by the domain's
        rules; `priority` None leaves it to the server (the task's profile's, else 0). Raises
        InvalidTaskSpec (every bad field), DuplicateTask, ApiRefused, RetryableError."""
        body: dict[str, Any] = {
            "name": name,
            "namespace": namespace,
            "info": parse_info(info) if isinstance(info, str) else info,
        }
        if priority is not None:
            body["priority"] = priority
        if run_at is not None:
            body["run_at"] = run_at.isoformat()
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

    def render(
        self, task_id: int | None = None, *, name: str | None = None, namespace: str = "default", info: Any = None
    ) -> dict[str, Any]:
        """POST /api/v1/render. Raises TaskNotFound, InvalidTaskSpec, ApiRefused, RetryableError."""
        if task_id is not None:
            body: dict[str, Any] = {"task_id": task_id}
        else:
            body = {"name": name, "namespace": namespace, "info": parse_info(info) if isinstance(info, str) else info}
        result: dict[str, Any] = self._call("POST", f"{API}/render", json=body)
        return result

    # -- schedules ----------------------------------------------------------------------------
    def create_schedule(self, request: ScheduleRequest) -> ScheduleView:
        body = {
            "name": request.name,
            "namespace": request.namespace,
            "cron": request.cron,
            "timezone": request.timezone,
            "info": parse_info(request.info) if isinstance(request.info, str) else request.info,
            "concurrency": request.concurrency,
            "starting_deadline_seconds": request.starting_deadline_seconds,
            "catch_up": request.catch_up,
            "keep": request.keep,
        }
        return _schedule(self._call("POST", f"{API}/schedules", json=body, conflict=DuplicateSchedule))

    def list_schedules(self) -> list[ScheduleView]:
        return [_schedule(item) for item in self._call("GET", f"{API}/schedules")]

    def schedule(self, namespace: str, name: str) -> ScheduleView:
        path = f"{API}/schedules/{self._schedule_id(namespace, name)}"
        return _schedule(self._call("GET", path, conflict=ScheduleNotFound))

    def pause_schedule(self, namespace: str, name: str) -> ScheduleView:
        return _schedule(
            self._call("POST", f"{API}/schedules/{self._schedule_id(namespace, name)}/pause", conflict=ScheduleNotFound)
        )

    def resume_schedule(self, namespace: str, name: str) -> ScheduleView:
        return _schedule(
            self._call(
                "POST", f"{API}/schedules/{self._schedule_id(namespace, name)}/resume", conflict=ScheduleNotFound
            )
        )

    def delete_schedule(self, namespace: str, name: str) -> None:
        path = f"{API}/schedules/{self._schedule_id(namespace, name)}"
        try:
            response = self._http.request("DELETE", path)
        except httpx.HTTPError as exc:
            raise RetryableError(f"cannot reach {self.server}: {exc}") from None
        if not response.is_success:
            raise self._error(response, PermanentError)

    def trigger_schedule(self, namespace: str, name: str) -> Task:
        path = f"{API}/schedules/{self._schedule_id(namespace, name)}/trigger"
        return _task(self._call("POST", path, conflict=DuplicateTask))

    def upcoming(self, namespace: str, name: str, after: datetime | None, count: int) -> tuple[str, list[datetime]]:
        params: dict[str, Any] = {"count": count}
        if after is not None:
            params["from"] = after.isoformat()
        found = self._call(
            "GET",
            f"{API}/schedules/{self._schedule_id(namespace, name)}/next",
            params=params,
            conflict=ScheduleNotFound,
        )
        return str(found["timezone"]), [datetime.fromisoformat(t) for t in found["times"]]

    def _schedule_id(self, namespace: str, name: str) -> int:
        found = self._call("GET", f"{API}/schedules", params={"namespace": namespace, "name": name})
        if not found:
            raise ScheduleNotFound(f"no schedule named {name!r} in namespace {namespace!r}")
        return int(found[0]["id"])

    def events(self, task_id: int) -> list[TaskEvent]:
        found = self._call("GET", f"{API}/tasks/{task_id}/events")
        return [_event(item) for item in found["items"]]

    def logs(
        self,
        task_id: int,
        *,
        follow: bool = False,
        tail: int | None = None,
        attempt: int | None = None,
        reconnect_for: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Iterator[bytes]:
        """A task's output. A follow that is cut (a replica restarting, a timeout) reconnects where it
        left off until the task has ended, and for at most `reconnect_for` seconds of not reaching any
        replica in a row. Raises TaskNotFound, ApiRefused, RetryableError (before the first chunk)."""
        params: dict[str, Any] = {}
        if tail is not None:
            params["tail"] = tail
        if attempt is not None:
            params["attempt"] = attempt
        if not follow:
            return iter([self._text(f"{API}/tasks/{task_id}/logs", params)])
        return self._follow(task_id, params, reconnect_for, sleep)

    def _text(self, path: str, params: Mapping[str, Any]) -> bytes:
        try:
            response = self._http.get(path, params=dict(params))
        except httpx.HTTPError as exc:
            raise RetryableError(f"cannot reach {self.server}: {exc}") from None
        if not response.is_success:
            raise self._error(response, PermanentError)
        return response.content

    def _follow(
        self, task_id: int, params: dict[str, Any], reconnect_for: float, sleep: Callable[[float], None]
    ) -> Iterator[bytes]:
        received = 0
        failing_since: float | None = None
        path = f"{API}/tasks/{task_id}/logs"
        while True:
            query = {**params, "follow": "true"}
            if received and "tail" in query:
                query["tail"] = 0  # after a tail: new lines only
            elif received:
                query["offset"] = received
            try:
                with self._http.stream("GET", path, params=query, timeout=httpx.Timeout(30.0, read=None)) as response:
                    if not response.is_success:
                        response.read()
                        error = self._error(response, PermanentError)
                        if not isinstance(error, RetryableError):
                            raise error
                        raise _Reconnect(str(error))
                    failing_since = None
                    for chunk in response.iter_raw():
                        received += len(chunk)
                        yield chunk
            except (httpx.HTTPError, _Reconnect) as exc:
                # Cut mid-way or not answered: a replica restarting. Try again while the task runs.
                now = time.monotonic()
                failing_since = failing_since if failing_since is not None else now
                if now - failing_since > reconnect_for:
                    raise RetryableError(f"lost the log stream from {self.server}: {exc}") from None
                sleep(1.0)
            try:
                if self.get(task_id).is_terminal:
                    return
            except RetryableError:
                continue  # the replica is still away: reconnecting finds out
            sleep(0.5)  # the stream ended while the task runs (idle timeout, byte cap): no tight loop

    def _call(
        self,
        method: str,
        path: str,
        *,
        conflict: type[PermanentError] = PermanentError,
        missing: type[PermanentError] | None = None,
        **kwargs: Any,
    ) -> Any:
        """`conflict`: the error this request can run into where several share a status (a 409 is
        DuplicateTask for a submit, InvalidTransition for a cancel; a 404 ScheduleNotFound for a schedule).
        `missing`: the error of a 404 where it differs from `conflict` (QueueNotFound for a queue route)."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise RetryableError(f"cannot reach {self.server}: {exc}") from None
        if response.is_success:
            return response.json()
        raise self._error(response, missing if missing is not None and response.status_code == 404 else conflict)

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
    return Task(
        info=data["info"],
        attempt=int(data.get("attempt", 1)),
        **_listed_fields(data),  # Task has every listed field too
    )


def _event(data: dict[str, Any]) -> TaskEvent:
    at = _when(data["at"])
    assert at is not None
    return TaskEvent(
        task_id=TaskId(int(data["task_id"])),
        at=at,
        attempt=int(data["attempt"]),
        from_status=data["from_status"],
        to_status=data["to_status"],
        job_name=data["job_name"],
        failure_class=data["failure_class"],
        reason=data["reason"],
        message=data["message"],
        epoch=data["epoch"],
        id=int(data["id"]),
    )


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


def _schedule(data: dict[str, Any]) -> ScheduleView:
    schedule = Schedule(
        id=ScheduleId(int(data["id"])),
        name=data["name"],
        namespace=data["namespace"],
        info=data["info"],
        cron=data["cron"],
        timezone=data["timezone"],
        user_id=int(data["user_id"]),
        concurrency=Concurrency(data["concurrency"]),
        starting_deadline_seconds=data["starting_deadline_seconds"],
        catch_up=int(data["catch_up"]),
        keep=int(data["keep"]),
        suspended=bool(data["suspended"]),
        version=int(data["version"]),
        created_at=_when(data["created_at"]),
        last_slot_at=_when(data["last_slot_at"]),
        last_fired_at=_when(data["last_fired_at"]),
        fired=int(data["fired"]),
        missed=int(data["missed"]),
        skipped=int(data["skipped"]),
    )
    tasks = tuple(
        TaskSummary(
            id=TaskId(int(t["id"])),
            name=t["name"],
            namespace=schedule.namespace,
            status=TaskStatus(t["status"]),
            created_at=_when(t["created_at"]),
        )
        for t in data["tasks"]
    )
    return ScheduleView(schedule, _when(data["next_fire_at"]), tasks)
