"""/api/v1/schedules: create, list (with last and next fire), get (with the newest `keep` tasks),
pause, resume, trigger, delete, and the upcoming fire times.

The access rules are the tasks': without admin rights a token sees and changes only its own user's
schedules (another user's is a 404 when reads are scoped, a 403 for a change when reads are open).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from pydantic import AwareDatetime

from nightwatch.app.api.access import Caller
from nightwatch.app.api.deps import UNAUTHORIZED, Reader, State, Writer
from nightwatch.app.api.schemas import ErrorOut, NewScheduleIn, ScheduleOut, TaskOut, UpcomingOut
from nightwatch.app.cursor import MAX_ID
from nightwatch.app.usecases.schedules import MAX_UPCOMING, ScheduleCommands, ScheduleRequest
from nightwatch.domain.errors import ScheduleNotFound
from nightwatch.domain.schedules import Schedule, ScheduleId

router = APIRouter(prefix="/api/v1", responses=UNAUTHORIZED)

ScheduleIdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="The schedule's id")]
NOT_FOUND: dict[int | str, dict[str, object]] = {404: {"model": ErrorOut, "description": "No such schedule"}}


def _commands(state: State) -> ScheduleCommands:
    if state.backend.schedules is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "schedules are not available on this server")
    return state.backend.schedules


def _readable(state: State, who: Caller, schedule_id: int) -> Schedule:
    schedule = _commands(state).get(ScheduleId(schedule_id))
    scope = state.policy.scope_of(who)
    if scope is not None and schedule.user_id != scope:
        raise ScheduleNotFound(f"no schedule with id {schedule_id}")
    return schedule


def _changeable(state: State, who: Caller, schedule_id: int) -> Schedule:
    schedule = _readable(state, who, schedule_id)
    if not who.admin and schedule.user_id != who.user_id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"schedule {schedule_id} belongs to another user")
    return schedule


@router.post(
    "/schedules",
    status_code=status.HTTP_201_CREATED,
    response_model=ScheduleOut,
    responses={409: {"model": ErrorOut, "description": "A schedule of that name exists in that namespace"}},
)
def create_schedule(body: NewScheduleIn, response: Response, who: Writer, state: State) -> ScheduleOut:
    """Create a schedule as the token's user; cron, timezone and info are checked before it is stored."""
    assert who.user_id is not None
    request = ScheduleRequest(
        name=body.name,
        namespace=body.namespace,
        cron=body.cron,
        timezone=body.timezone,
        info=body.info,
        concurrency=body.concurrency,
        starting_deadline_seconds=body.starting_deadline_seconds,
        catch_up=body.catch_up,
        keep=body.keep,
    )
    commands = _commands(state)
    made = commands.create(request, user_id=who.user_id)
    response.headers["Location"] = f"/api/v1/schedules/{made.id}"
    return ScheduleOut.of(commands.view(made))


@router.get("/schedules", response_model=list[ScheduleOut])
def list_schedules(
    who: Reader,
    state: State,
    namespace: Annotated[str | None, Query(max_length=253)] = None,
    name: Annotated[str | None, Query(max_length=253)] = None,
) -> list[ScheduleOut]:
    """Every schedule the caller may see (by id), each with its last task and next fire time."""
    commands = _commands(state)
    found = commands.list_schedules(user_id=state.policy.scope_of(who))
    return [
        ScheduleOut.of(commands.view(s, history=False))
        for s in found
        if (namespace is None or s.namespace == namespace) and (name is None or s.name == name)
    ]


@router.get("/schedules/{schedule_id}", response_model=ScheduleOut, responses=NOT_FOUND)
def get_schedule(schedule_id: ScheduleIdPath, who: Reader, state: State) -> ScheduleOut:
    """One schedule with its newest `keep` tasks (older ones stay in /tasks)."""
    return ScheduleOut.of(_commands(state).view(_readable(state, who, schedule_id)))


@router.post("/schedules/{schedule_id}/pause", response_model=ScheduleOut, responses=NOT_FOUND)
def pause_schedule(schedule_id: ScheduleIdPath, who: Writer, state: State) -> ScheduleOut:
    commands = _commands(state)
    return ScheduleOut.of(commands.view(commands.pause(_changeable(state, who, schedule_id))))


@router.post("/schedules/{schedule_id}/resume", response_model=ScheduleOut, responses=NOT_FOUND)
def resume_schedule(schedule_id: ScheduleIdPath, who: Writer, state: State) -> ScheduleOut:
    """Resume; the slots of the pause do not run (and are not counted as missed)."""
    commands = _commands(state)
    return ScheduleOut.of(commands.view(commands.resume(_changeable(state, who, schedule_id))))


@router.post(
    "/schedules/{schedule_id}/trigger", status_code=status.HTTP_201_CREATED, response_model=TaskOut, responses=NOT_FOUND
)
def trigger_schedule(schedule_id: ScheduleIdPath, who: Writer, state: State) -> TaskOut:
    """One task now, outside the cron slots."""
    return TaskOut.of(_commands(state).trigger(_changeable(state, who, schedule_id)))


@router.delete("/schedules/{schedule_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
def delete_schedule(schedule_id: ScheduleIdPath, who: Writer, state: State) -> Response:
    """Delete the schedule; its tasks stay."""
    _commands(state).delete(_changeable(state, who, schedule_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/schedules/{schedule_id}/next", response_model=UpcomingOut, responses=NOT_FOUND)
def upcoming(
    schedule_id: ScheduleIdPath,
    who: Reader,
    state: State,
    from_: Annotated[
        AwareDatetime | None, Query(alias="from", description="ISO 8601 with an offset; now by default")
    ] = None,
    count: Annotated[int, Query(ge=1, le=MAX_UPCOMING)] = 5,
) -> UpcomingOut:
    """The next `count` fire times after `from`, as UTC instants."""
    schedule = _readable(state, who, schedule_id)
    times = _commands(state).upcoming(schedule.cron, schedule.timezone, from_, count)
    return UpcomingOut(timezone=schedule.timezone, times=times)
