"""The user's side of schedules (CLI, REST API): create, pause, resume, delete, trigger, upcoming.

`CreateSchedule` validates everything before a row is stored, reporting every problem with its
field: the name and bounds (`check_schedule_fields`), the cron spec and zone (the calendar), and
`info` and the namespace with the one submission validator, applied to the name of a task this
schedule will make, so a schedule is accepted exactly when its slots' tasks can become Jobs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nightwatch.domain.errors import InvalidSchedule, InvalidTaskSpec, Problem
from nightwatch.domain.model import Task
from nightwatch.domain.names import check_dns1123_label
from nightwatch.domain.ports import (
    Clock,
    CronCalendar,
    NewSchedule,
    NewTask,
    ScheduleRepository,
    TaskCommands,
    TaskFilter,
    TaskQueries,
    TaskSummary,
)
from nightwatch.domain.schedules import (
    MAX_SCHEDULE_NAME_CHARS,
    Concurrency,
    Schedule,
    ScheduleId,
    check_schedule_fields,
    slot_task_name,
)
from nightwatch.domain.submission import SubmissionPolicy, validate_submission

MAX_UPCOMING = 1000
"""`next --count` at most."""


@dataclass(frozen=True, slots=True)
class ScheduleView:
    """A schedule as people see it: its row, when it fires next, and its newest tasks (`keep` of them)."""

    schedule: Schedule
    next_fire_at: datetime | None
    tasks: tuple[TaskSummary, ...] = ()

    @property
    def last_task(self) -> TaskSummary | None:
        return self.tasks[0] if self.tasks else None


@dataclass(frozen=True, slots=True)
class ScheduleRequest:
    """A schedule as a user asks for it (CLI flags, a REST body)."""

    name: str
    cron: str
    info: str | Mapping[str, Any]
    namespace: str = "default"
    timezone: str = "UTC"
    concurrency: str = "Allow"
    starting_deadline_seconds: int | None = None
    catch_up: int = 1
    keep: int = 10


class ScheduleCommands:
    """Raises InvalidSchedule (every bad field), DuplicateSchedule, ScheduleNotFound, RetryableError."""

    def __init__(
        self,
        schedules: ScheduleRepository,
        tasks: TaskCommands,
        calendar: CronCalendar,
        clock: Clock,
        policy: SubmissionPolicy,
        queries: TaskQueries | None = None,
    ) -> None:
        self._schedules = schedules
        self._queries = queries
        self._tasks = tasks
        self._calendar = calendar
        self._clock = clock
        self._policy = policy

    def create(self, request: ScheduleRequest, user_id: int = 0) -> Schedule:
        now = self._clock.now()
        problems = check_schedule_fields(
            request.name,
            catch_up=request.catch_up,
            keep=request.keep,
            starting_deadline_seconds=request.starting_deadline_seconds,
            cron=request.cron,
            timezone=request.timezone,
        )
        concurrency: Concurrency | None = None
        try:
            concurrency = Concurrency(request.concurrency)
        except ValueError:
            allowed = ", ".join(c.value for c in Concurrency)
            problems.append(
                Problem(("concurrency",), f"concurrency must be one of {allowed}, not {request.concurrency!r}")
            )
        try:
            self._calendar.check(request.cron, request.timezone)
        except InvalidTaskSpec as exc:
            # A field already refused for its width is not parsed again.
            problems.extend(p for p in exc.problems if p.loc not in {q.loc for q in problems})
        info = ""
        try:
            # A name the schedule's tasks will have, so the namespace and info are judged as dispatch will.
            sample = slot_task_name(_valid_label(request.name), now)
            info = validate_submission(sample, request.namespace, request.info, self._policy).info
        except InvalidTaskSpec as exc:
            problems.extend(p for p in exc.problems if p.loc[:1] != ("name",))
        if problems or concurrency is None:
            raise InvalidSchedule("; ".join(p.message for p in problems), problems)
        new = NewSchedule(
            name=request.name,
            namespace=request.namespace,
            info=info,
            cron=request.cron,
            timezone=request.timezone,
            user_id=user_id,
            concurrency=concurrency,
            starting_deadline_seconds=request.starting_deadline_seconds,
            catch_up=request.catch_up,
            keep=request.keep,
        )
        return self._schedules.add(new, now)

    def get(self, schedule_id: ScheduleId) -> Schedule:
        return self._schedules.get(schedule_id)

    def find(self, namespace: str, name: str) -> Schedule:
        return self._schedules.find(namespace, name)

    def list_schedules(self, *, user_id: int | None = None, limit: int = 500) -> list[Schedule]:
        return self._schedules.list_schedules(user_id=user_id, limit=limit)

    def view(self, schedule: Schedule, *, history: bool = True) -> ScheduleView:
        """The schedule with its next fire time and (`history`) its newest `keep` tasks, or just the
        newest one (for its status) without."""
        limit = schedule.keep if history else 1
        tasks: tuple[TaskSummary, ...] = ()
        if self._queries is not None and limit > 0:
            tasks = self._queries.list_newest(TaskFilter(schedule_id=schedule.id), limit=limit).tasks
        try:
            upcoming = self.next_fire(schedule)
        except InvalidTaskSpec:
            upcoming = None  # a spec written by hand that no longer parses: shown, never fired
        return ScheduleView(schedule, upcoming, tasks)

    def pause(self, schedule: Schedule) -> Schedule:
        return self._schedules.set_suspended(schedule.id, True, self._clock.now())

    def resume(self, schedule: Schedule) -> Schedule:
        return self._schedules.set_suspended(schedule.id, False, self._clock.now())

    def delete(self, schedule: Schedule) -> None:
        self._schedules.delete(schedule.id)

    def trigger(self, schedule: Schedule) -> Task:
        """One task now, outside the cron slots (its slot is now, to the second), whatever the
        concurrency policy. Raises DuplicateTask when this second's slot exists already."""
        now = self._clock.now().replace(microsecond=0)
        new = NewTask(
            slot_task_name(schedule.name, now),
            schedule.namespace,
            schedule.info,
            schedule.user_id,
            schedule_id=schedule.id,
            slot_at=now,
        )
        return self._tasks.add(new, self._clock.now())

    def upcoming(self, cron: str, timezone: str, after: datetime | None = None, count: int = 5) -> list[datetime]:
        """The next `count` slots after `after` (now when None), as UTC instants."""
        if not 1 <= count <= MAX_UPCOMING:
            message = f"count must be from 1 to {MAX_UPCOMING}, not {count}"
            raise InvalidSchedule(message, [Problem(("count",), message)])
        start = after if after is not None else self._clock.now()
        return self._calendar.slots(cron, timezone, start, until=None, limit=count)

    def next_fire(self, schedule: Schedule) -> datetime | None:
        """When the schedule fires next (None: suspended, or a spec that names no more instants)."""
        if schedule.suspended:
            return None
        # After the last slot handled: a slot the leader has not reached yet (it is down) shows as due.
        after = schedule.last_slot_at or self._clock.now()
        found = self._calendar.slots(schedule.cron, schedule.timezone, after, until=None, limit=1)
        return found[0] if found else None


def _valid_label(name: str) -> str:
    """`name`, or a valid stand-in when it is not one: its own problems are reported by
    `check_schedule_fields`, and must not come back a second time as the task name's."""
    try:
        check_dns1123_label(name, "schedule name")
    except InvalidTaskSpec:
        return "schedule"
    return name if len(name) <= MAX_SCHEDULE_NAME_CHARS else "schedule"
