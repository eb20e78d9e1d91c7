"""SpawnSchedules: the leader-only watcher that turns each schedule's due slots into task rows.

One tick reads the schedules that are not suspended; for each, the calendar lists the slots after
its `last_slot_at` up to now (at most `window` of them: a long outage of a seconds schedule is
walked through in bounded steps, every slot counted), `plan_slots` (domain/schedules.py) decides
which fire, which are missed and which are skipped, and `ScheduleRepository.fire` writes the tasks
and the bookkeeping in one transaction under the fencing epoch, by compare-and-set on the
schedule's version. A step that lost (another leader, a pause) writes nothing and is re-planned
next tick from what the row says then; the unique (schedule_id, slot_at) key makes a repeated
insert a no-op, so a slot never runs twice and is never dropped without being counted.

Replace asks for cancellation of the in-flight tasks (a flag, as `nightwatch cancel` sets; the
cancel watcher deletes their Jobs) just before the step that fires the new one.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from nightwatch.domain.errors import InvalidTransition, LeadershipLost, NightwatchError, TaskNotFound
from nightwatch.domain.ports import Clock, CronCalendar, Fence, NewTask, ScheduleRepository, SlotFiring, TaskCommands
from nightwatch.domain.schedules import Concurrency, Schedule, ScheduleId, plan_slots, slot_task_name

logger = logging.getLogger(__name__)


class SpawnSettings(BaseModel):
    """How one spawn tick walks the schedules (the `spawn:` configuration section)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window: int = Field(default=1000, gt=0, le=100_000)
    """Slots of one schedule handled per tick at most; after a longer outage the next ticks go on."""
    max_schedules: int = Field(default=10_000, gt=0)
    """Schedules read per tick."""


@dataclass
class SpawnReport:
    schedules: int = 0
    fired: int = 0
    missed: int = 0
    skipped: int = 0
    lost: int = 0
    """Steps refused because the schedule had moved on (re-planned next tick)."""
    name_taken: int = 0
    """Slots not inserted because their task existed (already fired) or their name was taken."""
    errors: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


class SpawnSchedules:
    def __init__(
        self,
        schedules: ScheduleRepository,
        commands: TaskCommands,
        calendar: CronCalendar,
        clock: Clock,
        fence: Fence,
        settings: SpawnSettings | None = None,
    ) -> None:
        self._schedules = schedules
        self._commands = commands
        self._calendar = calendar
        self._clock = clock
        self._fence = fence
        self._settings = settings or SpawnSettings()
        self._next: dict[ScheduleId, tuple[tuple[object, ...], datetime | None]] = {}

    def __call__(self) -> SpawnReport:
        report = SpawnReport()
        self._fence.epoch()  # a replica that is not leading reads nothing
        schedules = self._schedules.list_schedules(suspended=False, limit=self._settings.max_schedules)
        for gone in set(self._next) - {s.id for s in schedules}:
            del self._next[gone]  # deleted or paused: nothing to remember
        for schedule in schedules:
            report.schedules += 1
            try:
                self._step(schedule, report)
            except LeadershipLost:
                raise
            except NightwatchError as exc:
                # One bad schedule (a spec written by hand, a refused insert) never blocks the others.
                report.errors += 1
                logger.warning("schedule %s/%s: %s", schedule.namespace, schedule.name, exc)
        return report

    def _step(self, schedule: Schedule, report: SpawnReport) -> None:
        now = self._clock.now()
        after = schedule.last_slot_at or schedule.created_at or now
        # An idle schedule costs a dict lookup, not a calendar walk (~0.2 ms each, every second): its
        # next slot is remembered until the row changes (any step, pause or edit moves the version).
        key = (schedule.version, schedule.cron, schedule.timezone, after)
        cached = self._next.get(schedule.id)
        if cached is None or cached[0] != key:
            upcoming = self._calendar.slots(schedule.cron, schedule.timezone, after, until=None, limit=1)
            cached = (key, upcoming[0] if upcoming else None)
            self._next[schedule.id] = cached
        if cached[1] is None or cached[1] > now:
            return
        window = self._settings.window
        due = self._calendar.slots(schedule.cron, schedule.timezone, after, until=now, limit=window + 1)
        more_after = len(due) > window
        due = due[:window]
        if not due:
            return
        in_flight = self._schedules.in_flight(schedule.id) if schedule.concurrency is not Concurrency.ALLOW else []
        plan = plan_slots(schedule, due, now, more_after=more_after, in_flight=bool(in_flight))
        epoch = self._fence.epoch()
        if plan.cancel_in_flight:
            for task_id in in_flight:
                # A task that ended meanwhile needs no replacing.
                with suppress(InvalidTransition, TaskNotFound):
                    self._commands.request_cancel(task_id)
        tasks = tuple(
            NewTask(
                slot_task_name(schedule.name, slot),
                schedule.namespace,
                schedule.info,
                schedule.user_id,
                schedule_id=schedule.id,
                slot_at=slot,
            )
            for slot in plan.fire
        )
        assert plan.last_slot_at is not None
        result = self._schedules.fire(
            SlotFiring(
                schedule_id=schedule.id,
                expected_version=schedule.version,
                tasks=tasks,
                last_slot_at=plan.last_slot_at,
                last_fired_at=plan.fire[-1] if plan.fire else None,
                fired=len(plan.fire),
                missed=len(plan.missed),
                skipped=len(plan.skipped),
            ),
            epoch=epoch,
            now=now,
        )
        if not result.applied:
            report.lost += 1
            return
        report.fired += len(plan.fire)
        report.missed += len(plan.missed)
        report.skipped += len(plan.skipped)
        report.name_taken += len(result.not_inserted)
        for slot in result.not_inserted:
            logger.warning(
                "schedule %s/%s: slot %s not inserted: its task exists already or the name %s is taken",
                schedule.namespace,
                schedule.name,
                slot.isoformat(),
                slot_task_name(schedule.name, slot),
            )
        # One line per reason, not per slot: an outage of a seconds schedule misses thousands.
        by_reason: dict[str, list[datetime]] = {}
        for slot, reason in plan.reasons.items():
            by_reason.setdefault(reason, []).append(slot)
        for reason, slots in sorted(by_reason.items()):
            report.reasons[reason] = report.reasons.get(reason, 0) + len(slots)
            logger.info(
                "schedule %s/%s: %d slot(s) from %s to %s %s",
                schedule.namespace,
                schedule.name,
                len(slots),
                min(slots).isoformat(),
                max(slots).isoformat(),
                reason,
            )
