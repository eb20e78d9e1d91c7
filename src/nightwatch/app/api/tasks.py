"""/api/v1/tasks: submit, list (summaries: filters, cursor pages, newest first), get, cancel.

Domain errors become HTTP statuses in `app.py` (from the table in `app/errors.py`); here only the
access rules and the page cursor.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from fastapi.exceptions import RequestValidationError

from nightwatch.app.api.deps import UNAUTHORIZED, Reader, State, Writer
from nightwatch.app.api.schemas import (
    ErrorOut,
    NewTaskIn,
    TaskEventOut,
    TaskEventsOut,
    TaskOut,
    TaskPageOut,
    TaskSummaryOut,
)
from nightwatch.app.cursor import MAX_ID, decode_cursor, encode_cursor
from nightwatch.domain.model import TaskId, TaskStatus
from nightwatch.domain.ports import TaskFilter

router = APIRouter(prefix="/api/v1", responses=UNAUTHORIZED)

TaskIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="The task's id")]


@router.post(
    "/tasks",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskOut,
    responses={409: {"model": ErrorOut, "description": "A task of that name exists in that namespace"}},
)
def submit_task(body: NewTaskIn, response: Response, who: Writer, state: State) -> TaskOut:
    """Submit a task as the token's user; validated exactly as the CLI and dispatch validate it."""
    assert who.user_id is not None
    task = state.backend.submit(
        body.name, body.namespace, body.info, user_id=who.user_id, run_at=body.run_at, priority=body.priority
    )
    response.headers["Location"] = f"/api/v1/tasks/{task.id}"
    return TaskOut.of(task)


@router.get("/tasks", response_model=TaskPageOut)
def list_tasks(
    who: Reader,
    state: State,
    status_: Annotated[
        list[TaskStatus] | None, Query(alias="status", description="Repeat for several statuses")
    ] = None,
    namespace: Annotated[str | None, Query(max_length=253)] = None,
    user_id: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=64, description="`next_cursor` of the previous page")] = None,
) -> TaskPageOut:
    """Task summaries (no `info`, bounded text), newest first, one page at a time. Pages stay stable
    while tasks are added; `GET /tasks/{id}` has the whole task."""
    before_id = before_id_of(cursor) if cursor is not None else None
    scope = state.policy.scope_of(who)
    if scope is not None and user_id not in (None, scope):
        return TaskPageOut(items=[], next_cursor=None)  # a non-admin sees no one else's tasks
    where = TaskFilter(
        statuses=frozenset(status_) if status_ else None,
        namespace=namespace,
        user_id=scope if scope is not None else user_id,
    )
    page = state.backend.queries.list_newest(where, before_id=before_id, limit=limit)
    next_cursor = encode_cursor(page.next_before_id) if page.next_before_id is not None else None
    waiting = state.backend.waiting
    items = [TaskSummaryOut.of(t, waiting.listed(t) if waiting is not None else None) for t in page.tasks]
    return TaskPageOut(items=items, next_cursor=next_cursor)


@router.get("/tasks/{task_id}", response_model=TaskOut, responses={404: {"model": ErrorOut}})
def get_task(task_id: TaskIdPath, who: Reader, state: State) -> TaskOut:
    """One task, with its Job name, message and timestamps."""
    task = state.backend.queries.get(TaskId(task_id))
    state.policy.check_readable(who, task)
    waiting = state.backend.waiting
    return TaskOut.of(task, waiting.detail(task) if waiting is not None else None)


@router.get("/tasks/{task_id}/events", response_model=TaskEventsOut, responses={404: {"model": ErrorOut}})
def list_task_events(
    task_id: TaskIdPath,
    who: Reader,
    state: State,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> TaskEventsOut:
    """The task's history (its attempts and every status change), oldest first; read like the task."""
    task = state.backend.queries.get(TaskId(task_id))
    state.policy.check_readable(who, task)
    return TaskEventsOut(items=[TaskEventOut.of(e) for e in state.backend.queries.list_events(task.id, limit=limit)])


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
def cancel_task(task_id: TaskIdPath, who: Writer, state: State) -> TaskOut:
    """Ask for cancellation; the leader deletes the Job and marks the task Cancelled shortly after."""
    state.policy.check_cancellable(who, state.backend.queries.get(TaskId(task_id)))
    return TaskOut.of(state.backend.cancel(TaskId(task_id)))


def before_id_of(cursor: str) -> int:
    """The id a page cursor encodes; a 422 naming the `cursor` parameter for anything else."""
    try:
        return decode_cursor(cursor)
    except ValueError:
        raise RequestValidationError(
            [{"loc": ["query", "cursor"], "msg": "not a cursor this API returned", "type": "value_error"}]
        ) from None
