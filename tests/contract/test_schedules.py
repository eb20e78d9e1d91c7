"""The ScheduleRepository contract, and the fenced slot insert, on every adapter: memory, SQLite,
MariaDB and PostgreSQL (real servers; in CI a missing one is a failure)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from nightwatch.adapters.memory import MemoryScheduleRepository, MemoryTaskRepository
from nightwatch.adapters.sql import SqlScheduleRepository, SqlTaskRepository
from nightwatch.domain.errors import DuplicateSchedule, DuplicateTask, LeadershipLost, ScheduleNotFound
from nightwatch.domain.model import TaskStatus
from nightwatch.domain.ports import (
    NewSchedule,
    NewTask,
    ScheduleRepository,
    SlotFiring,
    TaskFilter,
    TaskRepository,
)
from nightwatch.domain.schedules import Concurrency, Schedule, ScheduleId, slot_task_name
from tests.support.sql_backends import mariadb_repository, postgres_repository, sqlite_repository

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
INFO = '{"image":"alpine"}'


@dataclass
class Stores:
    tasks: TaskRepository
    schedules: ScheduleRepository


def _sql(make: Callable[[], AbstractContextManager[TaskRepository]]) -> Callable[[], AbstractContextManager[Stores]]:
    @contextmanager
    def stores() -> Iterator[Stores]:
        with make() as tasks:
            assert isinstance(tasks, SqlTaskRepository)
            yield Stores(tasks, SqlScheduleRepository(tasks.engine))

    return stores


@contextmanager
def memory_stores() -> Iterator[Stores]:
    tasks = MemoryTaskRepository()
    yield Stores(tasks, MemoryScheduleRepository(tasks))


BACKENDS: dict[str, Callable[[], AbstractContextManager[Stores]]] = {
    "memory": memory_stores,
    "sqlite": _sql(sqlite_repository),
    "mariadb": _sql(mariadb_repository),
    "postgres": _sql(postgres_repository),
}


@pytest.fixture(params=sorted(BACKENDS))
def stores(request: pytest.FixtureRequest) -> Iterator[Stores]:
    with BACKENDS[request.param]() as made:
        yield made


def new_schedule(name: str = "nightly", user_id: int = 7, **fields: object) -> NewSchedule:
    return NewSchedule(name=name, namespace="default", info=INFO, cron="*/5 * * * *", user_id=user_id, **fields)  # type: ignore[arg-type]


def slot(minutes: int) -> datetime:
    return NOW + timedelta(minutes=minutes)


def firing(schedule: Schedule, *slots: datetime, missed: int = 0, version: int | None = None) -> SlotFiring:
    tasks = tuple(
        NewTask(
            slot_task_name(schedule.name, s),
            schedule.namespace,
            schedule.info,
            schedule.user_id,
            schedule_id=schedule.id,
            slot_at=s,
        )
        for s in slots
    )
    return SlotFiring(
        schedule_id=schedule.id,
        expected_version=schedule.version if version is None else version,
        tasks=tasks,
        last_slot_at=max(slots) if slots else NOW,
        last_fired_at=max(slots) if slots else None,
        fired=len(slots),
        missed=missed,
    )


def test_add_get_find_list_round_trip_every_field(stores: Stores) -> None:
    made = stores.schedules.add(
        new_schedule(
            timezone="Europe/Berlin",
            concurrency=Concurrency.FORBID,
            starting_deadline_seconds=300,
            catch_up=3,
            keep=4,
        ),
        NOW,
    )
    got = stores.schedules.get(made.id)
    assert got == made == stores.schedules.find("default", "nightly")
    assert (got.timezone, got.concurrency, got.starting_deadline_seconds, got.catch_up, got.keep) == (
        "Europe/Berlin",
        Concurrency.FORBID,
        300,
        3,
        4,
    )
    assert got.last_slot_at == NOW and got.created_at == NOW and not got.suspended and got.version == 0
    stores.schedules.add(new_schedule("other", user_id=8), NOW)
    assert [s.name for s in stores.schedules.list_schedules()] == ["nightly", "other"]
    assert [s.name for s in stores.schedules.list_schedules(user_id=8)] == ["other"]


def test_duplicate_names_and_unknown_schedules_are_refused(stores: Stores) -> None:
    made = stores.schedules.add(new_schedule(), NOW)
    with pytest.raises(DuplicateSchedule):
        stores.schedules.add(new_schedule(), NOW)
    with pytest.raises(ScheduleNotFound):
        stores.schedules.get(ScheduleId(made.id + 100))
    with pytest.raises(ScheduleNotFound):
        stores.schedules.find("default", "nope")
    stores.schedules.delete(made.id)
    with pytest.raises(ScheduleNotFound):
        stores.schedules.delete(made.id)


def test_pause_and_resume_move_the_version_and_resume_hands_over_the_paused_slots(stores: Stores) -> None:
    made = stores.schedules.add(new_schedule(), NOW)
    paused = stores.schedules.set_suspended(made.id, True, slot(10))
    assert paused.suspended and paused.version == 1 and paused.last_slot_at == NOW
    assert stores.schedules.list_schedules(suspended=False) == []
    resumed = stores.schedules.set_suspended(made.id, False, slot(60))
    assert not resumed.suspended and resumed.version == 2 and resumed.last_slot_at == slot(60)


def test_fire_inserts_the_slots_tasks_and_the_bookkeeping_together(stores: Stores) -> None:
    epoch = stores.tasks.advance_epoch()
    made = stores.schedules.add(new_schedule(), NOW)
    result = stores.schedules.fire(firing(made, slot(5), slot(10), missed=2), epoch=epoch, now=slot(10))
    assert result.applied and len(result.inserted) == 2 and result.not_inserted == ()
    after = stores.schedules.get(made.id)
    assert (after.fired, after.missed, after.last_slot_at, after.last_fired_at, after.version) == (
        2,
        2,
        slot(10),
        slot(10),
        1,
    )
    tasks = [stores.tasks.get(i) for i in result.inserted]
    assert [t.name for t in tasks] == [slot_task_name("nightly", slot(5)), slot_task_name("nightly", slot(10))]
    assert all(t.status is TaskStatus.NORMAL and t.user_id == 7 for t in tasks)
    listed = stores.tasks.list_newest(TaskFilter(schedule_id=made.id))
    assert [t.id for t in listed.tasks] == sorted(result.inserted, reverse=True)
    assert stores.tasks.list_newest(TaskFilter(schedule_id=made.id + 1)).tasks == ()
    assert sorted(stores.schedules.in_flight(made.id)) == sorted(result.inserted)


def test_a_stale_version_writes_nothing(stores: Stores) -> None:
    epoch = stores.tasks.advance_epoch()
    made = stores.schedules.add(new_schedule(), NOW)
    assert stores.schedules.fire(firing(made, slot(5)), epoch=epoch, now=slot(5)).applied
    again = stores.schedules.fire(firing(made, slot(10)), epoch=epoch, now=slot(10))  # version 0 again
    assert not again.applied
    assert stores.schedules.get(made.id).fired == 1
    assert len(stores.tasks.list_newest(TaskFilter(schedule_id=made.id)).tasks) == 1


def test_an_older_epoch_is_refused_and_writes_nothing(stores: Stores) -> None:
    old = stores.tasks.advance_epoch()
    stores.tasks.advance_epoch()
    made = stores.schedules.add(new_schedule(), NOW)
    with pytest.raises(LeadershipLost):
        stores.schedules.fire(firing(made, slot(5)), epoch=old, now=slot(5))
    assert stores.schedules.get(made.id).version == 0
    assert stores.tasks.list_newest(TaskFilter(schedule_id=made.id)).tasks == ()


def test_a_slot_that_has_its_task_already_is_not_inserted_again(stores: Stores) -> None:
    # The unique (schedule_id, slot_at) key: a re-planned step (after a failover) is a no-op for it.
    epoch = stores.tasks.advance_epoch()
    made = stores.schedules.add(new_schedule(), NOW)
    first = stores.schedules.fire(firing(made, slot(5)), epoch=epoch, now=slot(5))
    again = stores.schedules.fire(firing(stores.schedules.get(made.id), slot(5), slot(10)), epoch=epoch, now=slot(10))
    assert again.applied and again.not_inserted == (slot(5),) and len(again.inserted) == 1
    assert first.inserted[0] not in again.inserted
    with pytest.raises(DuplicateTask):
        stores.tasks.add(NewTask("by-hand", "default", INFO, schedule_id=made.id, slot_at=slot(10)), NOW)


def test_a_slot_whose_name_is_taken_is_reported_not_raised(stores: Stores) -> None:
    epoch = stores.tasks.advance_epoch()
    made = stores.schedules.add(new_schedule(), NOW)
    stores.tasks.add(NewTask(slot_task_name("nightly", slot(5)), "default", INFO), NOW)
    result = stores.schedules.fire(firing(made, slot(5)), epoch=epoch, now=slot(5))
    assert result.applied and result.inserted == () and result.not_inserted == (slot(5),)
    assert stores.schedules.get(made.id).last_slot_at == slot(5)


def test_two_spawners_racing_on_one_slot_make_one_task(stores: Stores) -> None:
    epoch = stores.tasks.advance_epoch()
    made = stores.schedules.add(new_schedule(), NOW)
    barrier = threading.Barrier(4)
    results: list[object] = []

    def race() -> None:
        barrier.wait()
        try:
            results.append(stores.schedules.fire(firing(made, slot(5)), epoch=epoch, now=slot(5)).applied)
        except Exception as exc:  # a RetryableError on a lock wait is an acceptable outcome too
            results.append(type(exc).__name__)

    threads = [threading.Thread(target=race) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1
    assert len(stores.tasks.list_newest(TaskFilter(schedule_id=made.id)).tasks) == 1
    assert stores.schedules.get(made.id).fired == 1
