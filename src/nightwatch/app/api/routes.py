"""The /api/v1 routes: submit, list (filters, cursor pages), get, cancel, summary, whoami.

Routes are plain functions (FastAPI runs them in its thread pool), because the repository is
blocking I/O. Domain errors become HTTP statuses in `app.py`; here only access rules and the
field-by-field validation of a submission.
"""

# No `from __future__ import annotations` here: FastAPI reads the route signatures at runtime, and
# the dependencies they name (`caller`, `reader`, `writer`) are local to `api_router`.

import base64
import binascii
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Response, Security, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPBearer

from nightwatch.app.api.access import AccessPolicy, Caller
from nightwatch.app.api.schemas import ErrorOut, NewTaskIn, SummaryOut, TaskOut, TaskPageOut, WhoAmIOut
from nightwatch.app.usecases.cancel import RequestCancel
from nightwatch.app.usecases.submit import SubmitTask
from nightwatch.domain.model import TaskId, TaskStatus
from nightwatch.domain.ports import TaskFilter, TaskQueries

MAX_ID = 2**63 - 1
"""BIGINT's range: a larger id or user cannot exist, and the databases reject it as a parameter."""

_bearer = HTTPBearer(auto_error=False, description="A token from the `api.tokens` configuration")

TaskIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="The task's id")]

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut, "description": "No token where one is needed, or an unknown token"},
}


@dataclass(frozen=True, slots=True)
class ApiBackend:
    """What the routes use: the same use cases as the CLI, and the repository for reads."""

    repository: TaskQueries
    submit: SubmitTask
    cancel: RequestCancel


SUMMARY_TTL_SECONDS = 2.0
"""Counting scans an index of the whole table (about 35 ms at 100,000 rows on MariaDB), and every open
page asks every few seconds: one count per user scope and period, however many browsers ask."""


class _CountsCache:
    def __init__(self, count: Callable[[int | None], Mapping[str, int]], ttl: float) -> None:
        self._count = count
        self._ttl = ttl
        self._lock = threading.Lock()
        self._entries: dict[int | None, tuple[float, Mapping[str, int]]] = {}

    def __call__(self, user_id: int | None) -> Mapping[str, int]:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(user_id)
            if entry is not None and now - entry[0] < self._ttl:
                return entry[1]
        counts = dict(self._count(user_id))
        with self._lock:
            if len(self._entries) > 10_000:  # one entry per user scope; never grows without bound
                self._entries.clear()
            self._entries[user_id] = (now, counts)
        return counts


def api_router(backend: ApiBackend, policy: AccessPolicy) -> APIRouter:
    router = APIRouter(prefix="/api/v1", responses=_ERRORS)
    counts_of = _CountsCache(lambda user_id: backend.repository.count_by_status(user_id=user_id), SUMMARY_TTL_SECONDS)

    def caller(
        _credentials: Annotated[object, Security(_bearer)],
        authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> Caller:
        return policy.caller(authorization)

    def reader(who: Annotated[Caller, Depends(caller)]) -> Caller:
        return policy.require_reader(who)

    def writer(who: Annotated[Caller, Depends(caller)]) -> Caller:
        return policy.require_writer(who)

    @router.post(
        "/tasks",
        status_code=status.HTTP_201_CREATED,
        response_model=TaskOut,
        responses={409: {"model": ErrorOut, "description": "A task of that name exists in that namespace"}},
    )
    def submit_task(body: NewTaskIn, response: Response, who: Annotated[Caller, Depends(writer)]) -> TaskOut:
        """Submit a task as the token's user; validated exactly as the CLI and dispatch validate it."""
        assert who.user_id is not None
        task = backend.submit(body.name, body.namespace, body.info, user_id=who.user_id)  # 422: app.py
        response.headers["Location"] = f"/api/v1/tasks/{task.id}"
        return TaskOut.of(task)

    @router.get("/tasks", response_model=TaskPageOut)
    def list_tasks(
        who: Annotated[Caller, Depends(reader)],
        status_: Annotated[
            list[TaskStatus] | None, Query(alias="status", description="Repeat for several statuses")
        ] = None,
        namespace: Annotated[str | None, Query(max_length=253)] = None,
        user_id: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(max_length=64, description="`next_cursor` of the previous page")] = None,
    ) -> TaskPageOut:
        """Tasks, newest first, one page at a time. Pages stay stable while tasks are added."""
        before_id = decode_cursor(cursor) if cursor is not None else None
        scope = policy.scope_of(who)
        if scope is not None and user_id not in (None, scope):
            return TaskPageOut(items=[], next_cursor=None)  # a non-admin sees no one else's tasks
        where = TaskFilter(
            statuses=frozenset(status_) if status_ else None,
            namespace=namespace,
            user_id=scope if scope is not None else user_id,
        )
        page = backend.repository.list_newest(where, before_id=before_id, limit=limit)
        next_cursor = encode_cursor(page.next_before_id) if page.next_before_id is not None else None
        return TaskPageOut(items=[TaskOut.of(t) for t in page.tasks], next_cursor=next_cursor)

    @router.get("/tasks/{task_id}", response_model=TaskOut, responses={404: {"model": ErrorOut}})
    def get_task(task_id: TaskIdPath, who: Annotated[Caller, Depends(reader)]) -> TaskOut:
        """One task, with its Job name, message and timestamps."""
        task = backend.repository.get(TaskId(task_id))
        policy.check_readable(who, task)
        return TaskOut.of(task)

    @router.post(
        "/tasks/{task_id}/cancel",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=TaskOut,
        responses={
            403: {"model": ErrorOut, "description": "Another user's task (when reads are open)"},
            404: {"model": ErrorOut, "description": "No such task (or another user's, when reads need a token)"},
            409: {"model": ErrorOut, "description": "The task has already ended"},
        },
    )
    def cancel_task(task_id: TaskIdPath, who: Annotated[Caller, Depends(writer)]) -> TaskOut:
        """Ask for cancellation; the leader deletes the Job and marks the task Cancelled shortly after."""
        policy.check_cancellable(who, backend.repository.get(TaskId(task_id)))
        return TaskOut.of(backend.cancel(TaskId(task_id)))

    @router.get("/summary", response_model=SummaryOut)
    def summary(who: Annotated[Caller, Depends(reader)]) -> SummaryOut:
        """Task counts by status (the caller's own tasks only, for a non-admin token when reads need
        one), at most a couple of seconds old."""
        counts = {str(s): 0 for s in TaskStatus}
        counts.update(counts_of(policy.scope_of(who)))
        return SummaryOut(counts=counts, total=sum(counts.values()))

    @router.get("/whoami", response_model=WhoAmIOut)
    def whoami(who: Annotated[Caller, Depends(caller)]) -> WhoAmIOut:
        """What the presented token (or none) may do; 401 only for a token that is not valid."""
        return WhoAmIOut(
            user_id=who.user_id, admin=who.admin, can_write=who.authenticated, reads_open=policy.reads_open
        )

    return router


_CURSOR_PREFIX = "before:"


def encode_cursor(before_id: int) -> str:
    """An opaque page cursor (today: the last id scanned; clients must not rely on that)."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{before_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The id a cursor encodes; a 422 naming the `cursor` parameter for anything else."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        if text.startswith(_CURSOR_PREFIX) and text[len(_CURSOR_PREFIX) :].isdigit():
            value = int(text[len(_CURSOR_PREFIX) :])
            if 1 <= value <= MAX_ID:
                return value
    except (binascii.Error, UnicodeError, ValueError):
        pass
    raise RequestValidationError(
        [{"loc": ["query", "cursor"], "msg": "not a cursor this API returned", "type": "value_error"}]
    )
