"""The REST API's JSON shapes (request and response models), published in /openapi.json."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from nightwatch.app.usecases.schedules import ScheduleView
from nightwatch.domain.model import Task, TaskEvent, TaskStatus
from nightwatch.domain.ports import (
    MAX_LISTED_JOB_NAME_CHARS,
    MAX_LISTED_MESSAGE_CHARS,
    MAX_LISTED_NAME_CHARS,
    TaskSummary,
)


class NewTaskIn(BaseModel):
    """A task to submit. The user is the token's, never the body's (an unknown key is a 422)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Task name = Job name: a DNS-1123 label, unique in its namespace")
    namespace: str = Field(default="default", description="Must be on the configured allow-list")
    info: dict[str, Any] = Field(
        description="The Job spec: image (required unless the profile sets it), command, args, env, resources, "
        "backoffLimit, activeDeadlineSeconds, ttlSecondsAfterFinished, and `profile` (docs/profiles.md); a Job "
        "field the profile locks is a 422, other keys are stored but never reach a Job",
        examples=[{"image": "busybox", "command": ["sh", "-c"], "args": ["echo hello"]}],
    )
    run_at: AwareDatetime | None = Field(
        default=None,
        description="Not dispatched before this instant: ISO 8601 with an offset (a time without one is a 422)",
        examples=["2026-03-29T02:30:00+01:00"],
    )
    priority: int | None = Field(
        default=None,
        description="Higher is dispatched first (then oldest): -1000..1000; absent or null: the profile's "
        "`priority`, else 0",
    )


class TaskOut(BaseModel):
    id: int
    name: str
    namespace: str
    user_id: int
    status: TaskStatus
    message: str
    job_name: str | None
    info: str = Field(description="The stored info JSON, as submitted")
    cancel_requested: bool
    version: int = Field(description="Bumped by every status change")
    created_at: datetime | None = Field(description="ISO-8601, UTC")
    started_at: datetime | None
    finished_at: datetime | None
    run_at: datetime | None = Field(default=None, description="Not dispatched before this (null: at once)")
    attempt: int = Field(default=1, description="The attempt the task is on (each attempt is a new Job)")
    next_attempt_at: datetime | None = Field(
        default=None, description="A Normal task waits until then (a retry's backoff, run_at)"
    )
    priority: int = 0
    queue: str | None = Field(default=None, description="The queue the task was launched under")
    waiting: str | None = Field(default=None, description="Why a Normal task has not started (docs/queues.md)")

    @classmethod
    def of(cls, task: Task, waiting: str | None = None) -> TaskOut:
        out = cls.model_validate(task, from_attributes=True)
        return out.model_copy(update={"waiting": waiting}) if waiting is not None else out


class TaskSummaryOut(BaseModel):
    """A listed task: every field of a Task but `info`, each text field bounded, so a page is bounded
    in bytes (docs/api.md). `GET /tasks/{id}` has the whole task."""

    id: int
    name: str = Field(max_length=MAX_LISTED_NAME_CHARS)
    namespace: str = Field(max_length=MAX_LISTED_NAME_CHARS)
    user_id: int
    status: TaskStatus
    message: str = Field(
        max_length=MAX_LISTED_MESSAGE_CHARS,
        description=f"Cut to {MAX_LISTED_MESSAGE_CHARS} characters, the last one then '\u2026'",
    )
    job_name: str | None = Field(max_length=MAX_LISTED_JOB_NAME_CHARS)
    cancel_requested: bool
    version: int = Field(description="Bumped by every status change")
    created_at: datetime | None = Field(description="ISO-8601, UTC")
    started_at: datetime | None
    finished_at: datetime | None
    priority: int = 0
    next_attempt_at: datetime | None = None
    run_at: datetime | None = None
    queue: str | None = Field(default=None, max_length=MAX_LISTED_NAME_CHARS)
    waiting: str | None = Field(default=None, description="A run_at or retry time still to come (docs/queues.md)")

    @classmethod
    def of(cls, task: TaskSummary, waiting: str | None = None) -> TaskSummaryOut:
        out = cls.model_validate(task, from_attributes=True)
        return out.model_copy(update={"waiting": waiting}) if waiting is not None else out


class TaskPageOut(BaseModel):
    items: list[TaskSummaryOut] = Field(description="Summaries: no `info`, bounded text (see TaskSummaryOut)")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null at the end")


class NewScheduleIn(BaseModel):
    """A schedule to create (docs/schedules.md). The user is the token's (an unknown key is a 422)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="A DNS-1123 label of at most 37 characters (a slot's task is NAME-<slot>)")
    namespace: str = Field(default="default", description="Must be on the configured allow-list")
    cron: str = Field(
        description="5 fields, 6 with seconds first, @hourly and the other aliases, or @every 30s",
        examples=["30 2 * * *", "*/10 * * * * *", "@every 5m"],
    )
    timezone: str = Field(default="UTC", description="An IANA zone the cron fields are read in")
    info: dict[str, Any] = Field(description="The task template, validated as a submitted task's info")
    concurrency: str = Field(default="Allow", description="Allow, Forbid or Replace (as CronJob)")
    starting_deadline_seconds: int | None = Field(default=None, description="A slot later than this is missed")
    catch_up: int = Field(default=1, description="Missed slots run after an outage (the newest ones)")
    keep: int = Field(default=10, description="How many of its newest tasks the schedule lists")


class ScheduleTaskOut(BaseModel):
    id: int
    name: str
    status: TaskStatus
    created_at: datetime | None


class ScheduleOut(BaseModel):
    id: int
    name: str
    namespace: str
    user_id: int
    info: str
    cron: str
    timezone: str
    concurrency: str
    starting_deadline_seconds: int | None
    catch_up: int
    keep: int
    suspended: bool
    version: int
    created_at: datetime | None
    last_slot_at: datetime | None = Field(description="Every slot up to here is handled")
    last_fired_at: datetime | None = Field(description="The newest slot that made a task")
    next_fire_at: datetime | None = Field(description="The next slot (null while suspended)")
    fired: int
    missed: int
    skipped: int
    last_task: ScheduleTaskOut | None
    tasks: list[ScheduleTaskOut] = Field(description="The newest `keep` tasks (only the last one in a listing)")

    @classmethod
    def of(cls, view: ScheduleView) -> ScheduleOut:
        s = view.schedule
        tasks = [ScheduleTaskOut.model_validate(t, from_attributes=True) for t in view.tasks]
        return cls(
            id=s.id,
            name=s.name,
            namespace=s.namespace,
            user_id=s.user_id,
            info=s.info,
            cron=s.cron,
            timezone=s.timezone,
            concurrency=str(s.concurrency),
            starting_deadline_seconds=s.starting_deadline_seconds,
            catch_up=s.catch_up,
            keep=s.keep,
            suspended=s.suspended,
            version=s.version,
            created_at=s.created_at,
            last_slot_at=s.last_slot_at,
            last_fired_at=s.last_fired_at,
            next_fire_at=view.next_fire_at,
            fired=s.fired,
            missed=s.missed,
            skipped=s.skipped,
            last_task=tasks[0] if tasks else None,
            tasks=tasks,
        )


class UpcomingOut(BaseModel):
    timezone: str
    times: list[datetime] = Field(description="ISO 8601 UTC instants, earliest first")


class SummaryOut(BaseModel):
    counts: dict[str, int] = Field(description="Tasks per status string (every known status, 0 included)")
    total: int


class WhoAmIOut(BaseModel):
    user_id: int | None = Field(description="The token's user; null without a token")
    admin: bool
    can_write: bool
    reads_open: bool = Field(description="Whether reads work without a token")


class TaskEventOut(BaseModel):
    """One entry of a task's history: a status change as it was stored."""

    id: int
    task_id: int
    at: datetime = Field(description="ISO-8601, UTC")
    attempt: int
    from_status: str | None = Field(description="null for the submission")
    to_status: str
    job_name: str | None
    failure_class: str = Field(description="infrastructure, oom, exit_code, deadline, config; empty otherwise")
    reason: str
    message: str
    epoch: int | None = Field(description="The fencing epoch of the leader that wrote it; null for a user's write")

    @classmethod
    def of(cls, event: TaskEvent) -> TaskEventOut:
        return cls.model_validate(event, from_attributes=True)


class TaskEventsOut(BaseModel):
    items: list[TaskEventOut] = Field(description="Oldest first: the newest `limit` events of the task")


class ErrorOut(BaseModel):
    detail: str


class QueueOut(BaseModel):
    name: str
    paused: bool
    in_flight: int = Field(description="Pending + Running tasks launched under this queue (Kueue-held left out)")
    max_in_flight: int | None
    max_starts_per_minute: int | None
    fair_share: bool

    @classmethod
    def of(cls, view: Any) -> QueueOut:
        return cls.model_validate(view, from_attributes=True)
