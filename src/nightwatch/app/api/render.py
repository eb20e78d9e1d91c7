"""/api/v1/render and /api/v1/profiles: the exact Job a task gets, and the profiles a form can pick.

Rendering needs the same token as submitting (it validates a submission, and a stored task's Job shows
its `info`); a stored task must also be readable by the caller.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from nightwatch.app.api.deps import UNAUTHORIZED, Reader, State, Writer
from nightwatch.app.api.schemas import ErrorOut
from nightwatch.app.cursor import MAX_ID
from nightwatch.app.usecases.render import RenderJob
from nightwatch.domain.model import TaskId

router = APIRouter(prefix="/api/v1", responses=UNAUTHORIZED)


class RenderIn(BaseModel):
    """Either `task_id` (a stored task) or `info` (and `namespace`, `name`) of a task not yet submitted."""

    model_config = ConfigDict(extra="forbid")

    task_id: int | None = Field(default=None, ge=1, le=MAX_ID, description="A stored task")
    name: str | None = Field(default=None, description="The task name (the Job's name); default `preview`")
    namespace: str = Field(default="default")
    info: dict[str, Any] | None = Field(default=None, description="The info of a task to preview")


class ProfileOut(BaseModel):
    name: str
    default: bool = Field(description="The profile of a task that names none (namespace defaults aside)")
    user_fields: list[str]
    images: list[str]
    namespaces: list[str] = Field(description="The namespaces that may use it; empty: any")


def _refused(field: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ["body", field], "msg": message, "type": "value_error"}])


def _renderer(state: Any) -> RenderJob:
    render: RenderJob | None = state.backend.render
    if render is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "rendering is not available on this server")
    return render


@router.post(
    "/render",
    responses={
        404: {"model": ErrorOut, "description": "No such task"},
        422: {"description": "The task or info is refused (each field named in `loc`)"},
    },
)
def render_job(body: RenderIn, who: Writer, state: State) -> dict[str, Any]:
    """The batch/v1 Job manifest nightwatch would create, validated as a submission is."""
    render = _renderer(state)
    if body.task_id is not None:
        if body.info is not None:
            raise _refused("info", "give either task_id or info, not both")
        state.policy.check_readable(who, state.backend.queries.get(TaskId(body.task_id)))
        return render.task(TaskId(body.task_id))
    if body.info is None:
        raise _refused("info", "give task_id or info")
    return render.preview(body.name, body.namespace, body.info)


@router.get("/profiles", response_model=list[ProfileOut])
def list_profiles(who: Reader, state: State) -> list[ProfileOut]:
    """The Job profiles in force (reloaded on SIGHUP)."""
    return [ProfileOut(**p) for p in _renderer(state).profiles()]
