"""The REST API's JSON shapes (request and response models), published in /openapi.json."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nightwatch.domain.model import Task, TaskStatus
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
        description="The Job spec: image (required), command, args, env, resources, backoffLimit, "
        "activeDeadlineSeconds, ttlSecondsAfterFinished; other keys are stored but never reach a Job",
        examples=[{"image": "busybox", "command": ["sh", "-c"], "args": ["echo hello"]}],
    )
    priority: int = Field(default=0, description="Higher is dispatched first (then oldest): -1000..1000")


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
    priority: int = 0
    next_attempt_at: datetime | None = Field(default=None, description="Not dispatched before this (a retry, a run_at)")
    run_at: datetime | None = None
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


class SummaryOut(BaseModel):
    counts: dict[str, int] = Field(description="Tasks per status string (every known status, 0 included)")
    total: int


class WhoAmIOut(BaseModel):
    user_id: int | None = Field(description="The token's user; null without a token")
    admin: bool
    can_write: bool
    reads_open: bool = Field(description="Whether reads work without a token")


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
