"""SpawnSchedules on the memory adapters with a FakeClock: slots fire once each, outages are
caught up as configured and every other slot is counted as missed, Forbid/Replace/Allow, the
starting deadline, pause/resume, and two spawners with different epochs racing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from nightwatch.adapters.apscheduler import ApschedulerCalendar
from nightwatch.adapters.memory import FakeClock, FixedFence, MemoryScheduleRepository, MemoryTaskRepository
from nightwatch.app.metrics import Metrics
from nightwatch.app.usecases.schedules import ScheduleCommands, ScheduleRequest
from nightwatch.app.usecases.spawn import SpawnSchedules, SpawnSettings
from nightwatch.domain.errors import InvalidSchedule, LeadershipLost
from nightwatch.domain.model import TaskId, TaskStatus
from nightwatch.domain.ports import TaskFilter
from nightwatch.domain.schedules import Schedule, slot_task_name
from nightwatch.domain.submission import SubmissionPolicy

INFO = {"image": "alpine", "command": ["true"]}
START = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)


class World:
    def __init__(self, epoch: int = 1) -> None:
        self.clock = FakeClock(START)
        self.tasks = MemoryTaskRepository()
        for _ in range(epoch):
            self.tasks.advance_epoch()
        self.schedules = MemoryScheduleRepository(self.tasks)
        self.calendar = ApschedulerCalendar()
        self.commands = ScheduleCommands(
            self.schedules, self.tasks, self.calendar, self.clock, SubmissionPolicy(frozenset({"default"}))
        )

    def spawner(self, epoch: int, **settings: int) -> SpawnSchedules:
        return SpawnSchedules(
            self.schedules, self.tasks, self.calendar, self.clock, FixedFence(epoch), SpawnSettings(**settings)
        )

    def create(self, cron: str = "* * * * *", **fields: object) -> Schedule:
        return self.commands.create(
            ScheduleRequest(name=str(fields.pop("name", "nightly")), cron=cron, info=INFO, **fields)
        )  # type: ignore[arg-type]

    def slots_of(self, schedule: Schedule) -> list[datetime]:
        return sorted(slot for owner, slot in self.tasks.slots.values() if owner == schedule.id)

    def finish_all(self) -> None:
        for task_id in list(self.tasks.slots):
            task = self.tasks.get(task_id)
            if not task.is_terminal:
                self.tasks.apply([task.fail("done", self.clock.now())], epoch=self.tasks._epoch)


def at(minute: int, hour: int = 0) -> datetime:
    return datetime(2026, 1, 1, hour, minute, tzinfo=UTC)


def test_each_slot_fires_once_with_a_deterministic_name_however_often_the_spawner_ticks() -> None:
    world = World()
    schedule = world.create()
    spawn = world.spawner(1)
    for _ in range(5):  # three minutes, ticking every 30 s and twice per tick
        spawn()
        spawn()
        world.clock.advance(30)
    assert world.slots_of(schedule) == [at(1), at(2)]
    task = world.tasks.get(TaskId(1))
    assert task.name == slot_task_name("nightly", at(1)) and task.status is TaskStatus.NORMAL
    stored = world.schedules.get(schedule.id)
    assert (stored.fired, stored.missed, stored.skipped, stored.last_fired_at) == (2, 0, 0, at(2))


@pytest.mark.parametrize(
    ("catch_up", "fired", "missed"), [(1, [at(0, 3)], 179), (3, [at(58, 2), at(59, 2), at(0, 3)], 177)]
)
def test_a_three_hour_outage_runs_the_newest_catch_up_slots_and_counts_the_rest_missed(
    catch_up: int, fired: list[datetime], missed: int
) -> None:
    world = World()
    schedule = world.create(catch_up=catch_up)
    world.clock.advance(3 * 3600 - 30)  # the leader was away from 00:00:30 to 03:00:00
    report = world.spawner(1)()
    assert world.slots_of(schedule) == fired
    assert (report.fired, report.missed) == (len(fired), missed)
    stored = world.schedules.get(schedule.id)
    assert stored.missed == missed and stored.last_slot_at == at(0, 3)


def test_an_outage_longer_than_the_window_is_walked_through_and_every_slot_counted() -> None:
    world = World()
    schedule = world.create("* * * * * *", catch_up=2)  # every second
    world.clock.advance(3 * 3600)
    spawn = world.spawner(1, window=1000)
    for _ in range(20):
        spawn()
    stored = world.schedules.get(schedule.id)
    assert stored.fired == 2 and stored.fired + stored.missed == 3 * 3600
    assert world.slots_of(schedule) == [
        datetime(2026, 1, 1, 3, 0, 29, tzinfo=UTC),
        datetime(2026, 1, 1, 3, 0, 30, tzinfo=UTC),
    ]


def test_starting_deadline_makes_a_late_slot_missed_not_run() -> None:
    world = World()
    schedule = world.create("0 * * * *", starting_deadline_seconds=60)
    world.clock.advance(3600 - 30 + 120)  # 01:02: the 01:00 slot is two minutes late
    report = world.spawner(1)()
    assert world.slots_of(schedule) == [] and report.missed == 1
    world.clock.advance(3600 - 90)  # 02:00:30: 30 s late, within the deadline
    world.spawner(1)()
    assert world.slots_of(schedule) == [at(0, 2)]


def test_forbid_skips_while_the_previous_task_is_in_flight() -> None:
    world = World()
    schedule = world.create(concurrency="Forbid")
    spawn = world.spawner(1)
    world.clock.advance(30)
    spawn()  # 00:01 fires
    world.clock.advance(60)
    report = spawn()  # 00:02: the 00:01 task is still Normal
    assert world.slots_of(schedule) == [at(1)] and report.skipped == 1
    world.finish_all()
    world.clock.advance(60)
    spawn()
    assert world.slots_of(schedule) == [at(1), at(3)]
    assert world.schedules.get(schedule.id).skipped == 1


def test_replace_requests_cancellation_of_the_previous_task_and_fires() -> None:
    world = World()
    schedule = world.create(concurrency="Replace")
    spawn = world.spawner(1)
    world.clock.advance(30)
    spawn()
    world.clock.advance(60)
    spawn()
    assert world.slots_of(schedule) == [at(1), at(2)]
    first, second = (world.tasks.get(TaskId(i)) for i in (1, 2))
    assert first.cancel_requested and not second.cancel_requested


def test_allow_runs_overlapping_tasks() -> None:
    world = World()
    schedule = world.create(concurrency="Allow")
    world.clock.advance(150)
    world.spawner(1)()
    world.clock.advance(60)
    world.spawner(1)()
    assert world.slots_of(schedule) == [at(3), at(4)]  # 00:03 is still Normal when 00:04 fires
    assert len(world.schedules.in_flight(schedule.id)) == 2


def test_pause_stops_firing_and_resume_does_not_run_the_slots_of_the_pause() -> None:
    world = World()
    schedule = world.create()
    spawn = world.spawner(1)
    world.commands.pause(schedule)
    world.clock.advance(600)
    spawn()
    assert world.slots_of(schedule) == []
    world.commands.resume(world.schedules.get(schedule.id))
    spawn()
    assert world.slots_of(schedule) == []
    world.clock.advance(60)
    spawn()
    assert world.slots_of(schedule) == [at(11)]
    assert world.schedules.get(schedule.id).missed == 0


def test_two_spawners_racing_with_different_epochs_the_older_is_refused() -> None:
    world = World(epoch=1)
    schedule = world.create()
    old = world.spawner(1)
    world.tasks.advance_epoch()  # a successor took over with epoch 2
    new = world.spawner(2)
    world.clock.advance(30)
    with pytest.raises(LeadershipLost):
        old()
    new()
    world.clock.advance(60)
    with pytest.raises(LeadershipLost):
        old()  # the 00:02 slot is due: the old leader's step is refused, nothing written
    assert world.slots_of(schedule) == [at(1)]
    assert world.schedules.get(schedule.id).fired == 1


def test_a_stale_step_writes_nothing_and_the_slot_still_fires_once() -> None:
    # Two spawners of the same epoch (a paused leader's tick resumed) read the same version:
    # the compare-and-set lets one step in, the other is lost, and the slot has one task.
    world = World()
    schedule = world.create()
    world.clock.advance(30)
    stale = world.schedules.get(schedule.id)
    world.spawner(1)()
    assert world.slots_of(schedule) == [at(1)]

    class Stale:
        def __getattr__(self, name: str) -> object:
            return getattr(world.schedules, name)

        def list_schedules(self, **kw: object) -> list[Schedule]:
            return [stale]

    spawn = SpawnSchedules(Stale(), world.tasks, world.calendar, world.clock, FixedFence(1))  # type: ignore[arg-type]
    report = spawn()
    assert report.lost == 1 and world.slots_of(schedule) == [at(1)]
    assert world.schedules.get(schedule.id).fired == 1


def test_a_slot_task_that_exists_already_is_not_inserted_twice() -> None:
    # A SIGKILL after the insert's commit and before... there is no such point: both are one
    # transaction. But a task written for the slot by `trigger` at the same second is kept.
    world = World()
    schedule = world.create("* * * * * *")
    world.clock.advance(0.5)
    world.commands.trigger(schedule)  # slot 00:00:30
    world.clock.advance(0.5)
    report = world.spawner(1)()  # due: 00:00:31 only (created at 00:00:30)
    assert report.fired == 1 and len(world.slots_of(schedule)) == 2


def test_a_schedule_with_a_bad_row_does_not_block_the_others() -> None:
    world = World()
    good = world.create(name="good")
    bad = world.create(name="bad")
    world.schedules._rows[bad.id].cron = "not a cron spec"  # written by hand
    world.clock.advance(30)
    report = world.spawner(1)()
    assert report.errors == 1 and world.slots_of(good) == [at(1)]


def test_create_refuses_every_bad_field_at_once() -> None:
    world = World()
    with pytest.raises(InvalidSchedule) as refused:
        world.commands.create(
            ScheduleRequest(
                name="x" * 40,
                cron="61 * * * *",
                timezone="Nowhere/City",
                info={"image": ""},
                namespace="forbidden",
                concurrency="Sometimes",
                catch_up=0,
            )
        )
    fields = {p.loc[0] for p in refused.value.problems}
    assert {"name", "cron", "timezone", "namespace", "concurrency", "catch_up", "info"} <= fields


def test_the_schedule_view_lists_only_its_newest_tasks() -> None:
    world = World()
    schedule = world.create(keep=2)
    spawn = world.spawner(1)
    for _ in range(4):
        world.clock.advance(60)
        spawn()
    page = world.tasks.list_newest(TaskFilter(schedule_id=schedule.id), limit=schedule.keep)
    assert [t.id for t in page.tasks] == [TaskId(4), TaskId(3)]


def test_metrics_count_fired_skipped_and_missed_slots() -> None:
    world = World()
    world.create(concurrency="Forbid", catch_up=2)
    world.clock.advance(5 * 60 - 30)  # 00:05: 00:01-00:03 missed, 00:04 skipped (Forbid, one at a time), 00:05 fired
    report = world.spawner(1)()
    metrics = Metrics()
    metrics.record_report("spawn", report)

    def slots(outcome: str) -> float | None:
        return metrics.registry.get_sample_value("nightwatch_schedule_slots_total", {"outcome": outcome})

    assert (slots("fired"), slots("skipped"), slots("missed")) == (1.0, 1.0, 3.0)


def test_an_idle_schedule_is_not_walked_through_the_calendar_every_tick() -> None:
    world = World()
    world.create("0 * * * *")  # hourly: nothing due for the next hour
    calls: list[int] = []

    class Counting(ApschedulerCalendar):
        def slots(self, *args: Any, **kwargs: Any) -> list[datetime]:
            calls.append(kwargs["limit"])
            return super().slots(*args, **kwargs)

    spawn = SpawnSchedules(world.schedules, world.tasks, Counting(), world.clock, FixedFence(1))
    for _ in range(10):
        spawn()
        world.clock.advance(1)
    assert calls == [1]  # its next slot, once; remembered while the row does not change
