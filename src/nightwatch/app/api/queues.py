"""/api/v1/queues: list the configured queues, pause and resume one (admin tokens only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status

from nightwatch.app.api.access import Caller
from nightwatch.app.api.deps import UNAUTHORIZED, State, Writer
from nightwatch.app.api.schemas import ErrorOut, QueueOut
from nightwatch.app.usecases.queues import QueueAdmin
from nightwatch.domain.queues import MAX_QUEUE_NAME_CHARS

router = APIRouter(
    prefix="/api/v1",
    responses={**UNAUTHORIZED, 403: {"model": ErrorOut, "description": "Not an admin token"}},
)

QueueName = Annotated[str, Path(min_length=1, max_length=MAX_QUEUE_NAME_CHARS, description="A configured queue")]


def _admin(who: Caller, state: State) -> QueueAdmin:
    if not who.admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "queues are managed with an admin token")
    if state.backend.queues is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "queues are not served here")
    return state.backend.queues


@router.get("/queues", response_model=list[QueueOut])
def list_queues(who: Writer, state: State) -> list[QueueOut]:
    """Every configured queue: paused or not, its tasks in flight and its limits."""
    return [QueueOut.of(v) for v in _admin(who, state).list()]


@router.post("/queues/{name}/pause", response_model=QueueOut, responses={404: {"model": ErrorOut}})
def pause_queue(name: QueueName, who: Writer, state: State) -> QueueOut:
    """Launch nothing new from this queue (its running Jobs go on), on every replica, from the next tick."""
    return QueueOut.of(_admin(who, state).pause(name))


@router.post("/queues/{name}/resume", response_model=QueueOut, responses={404: {"model": ErrorOut}})
def resume_queue(name: QueueName, who: Writer, state: State) -> QueueOut:
    """Launch from this queue again."""
    return QueueOut.of(_admin(who, state).resume(name))
