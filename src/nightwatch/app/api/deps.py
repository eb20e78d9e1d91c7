"""What every route depends on: the backend (use cases and queries) and who is calling.

`create_app` puts one `ApiState` on the application; the dependencies below read it from the
request, so the routes are plain module-level functions (FastAPI runs them in its thread pool,
the storage being blocking I/O). `caller` is whoever the bearer token says (anonymous without one),
`reader` and `writer` the same caller once the AccessPolicy lets them read or write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Header, Request, Security
from fastapi.security import HTTPBearer

from nightwatch.app.api.access import AccessPolicy, Caller
from nightwatch.app.api.schemas import ErrorOut
from nightwatch.app.counts import CachedCounts
from nightwatch.app.usecases.cancel import RequestCancel
from nightwatch.app.usecases.logs import ReadTaskLogs
from nightwatch.app.usecases.queues import ExplainWaiting, QueueAdmin
from nightwatch.app.usecases.render import RenderJob
from nightwatch.app.usecases.schedules import ScheduleCommands
from nightwatch.app.usecases.submit import SubmitTask
from nightwatch.domain.ports import TaskQueries


@dataclass(frozen=True, slots=True)
class ApiBackend:
    """What the routes use: the same use cases as the CLI, and the read side for everything else."""

    queries: TaskQueries
    submit: SubmitTask
    cancel: RequestCancel
    render: RenderJob | None = None
    """`POST /render`; None: not offered (404)."""
    schedules: ScheduleCommands | None = None
    """None: this server has no schedules (the /schedules routes answer 404)."""
    logs: ReadTaskLogs | None = None
    """Task output (None: `/tasks/{id}/logs` answers 404)."""
    queues: QueueAdmin | None = None
    """Pause, resume, list queues (None: the routes answer 404, e.g. in a test without them)."""
    waiting: ExplainWaiting | None = None
    """Why a Normal task waits (None: no `waiting` field is computed)."""


@dataclass(frozen=True, slots=True)
class ApiState:
    backend: ApiBackend
    policy: AccessPolicy
    summary_counts: CachedCounts


UNAUTHORIZED: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorOut, "description": "No token where one is needed, or an unknown token"},
}
"""The answer every /api/v1 route may give, published with each operation."""

_bearer = HTTPBearer(auto_error=False, description="A token from the `api.tokens` configuration")


def api_state(request: Request) -> ApiState:
    return cast(ApiState, request.app.state.api)


State = Annotated[ApiState, Depends(api_state)]


def caller(
    state: State,
    _credentials: Annotated[object, Security(_bearer)],
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Caller:
    return state.policy.caller(authorization)


def reader(state: State, who: Annotated[Caller, Depends(caller)]) -> Caller:
    return state.policy.require_reader(who)


def writer(state: State, who: Annotated[Caller, Depends(caller)]) -> Caller:
    return state.policy.require_writer(who)


AnyCaller = Annotated[Caller, Depends(caller)]
Reader = Annotated[Caller, Depends(reader)]
Writer = Annotated[Caller, Depends(writer)]
