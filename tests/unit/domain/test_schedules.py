"""domain/schedules.py: the slot rules (which due slots fire, which are missed or skipped), the
slot task names and their width, the schedule field bounds, and run_at parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nightwatch.domain.errors import InvalidTaskSpec
from nightwatch.domain.schedules import (
    MAX_SCHEDULE_NAME_CHARS,
    Concurrency,
    Schedule,
    ScheduleId,
    check_schedule_fields,
    parse_run_at,
    plan_slots,
    slot_suffix,
    slot_task_name,
)
from nightwatch.domain.submission import STORED_NAME_CHARS

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def schedule(**fields: object) -> Schedule:
    return Schedule(ScheduleId(1), "nightly", "default", "{}", "* * * * *", **fields)  # type: ignore[arg-type]


def minutes_ago(*ns: int) -> list[datetime]:
    return [NOW - timedelta(minutes=n) for n in ns]


def test_allow_fires_the_newest_catch_up_slots_and_misses_the_older_ones() -> None:
    plan = plan_slots(schedule(catch_up=2), minutes_ago(3, 2, 1, 0), NOW, more_after=False, in_flight=True)
    assert plan.fire == tuple(minutes_ago(1, 0)) and plan.missed == tuple(minutes_ago(3, 2))
    assert plan.last_slot_at == NOW and not plan.skipped


def test_a_full_window_with_more_after_is_all_missed() -> None:
    plan = plan_slots(schedule(catch_up=5), minutes_ago(3, 2), NOW, more_after=True, in_flight=False)
    assert plan.fire == () and plan.missed == tuple(minutes_ago(3, 2)) and plan.last_slot_at == minutes_ago(2)[0]


def test_starting_deadline_misses_late_slots_even_within_catch_up() -> None:
    plan = plan_slots(
        schedule(catch_up=3, starting_deadline_seconds=90), minutes_ago(2, 1, 0), NOW, more_after=False, in_flight=False
    )
    assert plan.missed == tuple(minutes_ago(2)) and plan.fire == tuple(minutes_ago(1, 0))


def test_forbid_skips_while_in_flight_and_runs_one_slot_at_a_time() -> None:
    busy = plan_slots(schedule(concurrency=Concurrency.FORBID), minutes_ago(0), NOW, more_after=False, in_flight=True)
    assert busy.fire == () and busy.skipped == tuple(minutes_ago(0)) and busy.last_slot_at == NOW
    free = plan_slots(
        schedule(concurrency=Concurrency.FORBID, catch_up=3),
        minutes_ago(2, 1, 0),
        NOW,
        more_after=False,
        in_flight=False,
    )
    assert free.fire == tuple(minutes_ago(0)) and free.skipped == tuple(minutes_ago(2, 1))


def test_replace_fires_the_newest_and_cancels_what_is_in_flight() -> None:
    plan = plan_slots(schedule(concurrency=Concurrency.REPLACE), minutes_ago(0), NOW, more_after=False, in_flight=True)
    assert plan.fire == tuple(minutes_ago(0)) and plan.cancel_in_flight
    idle = plan_slots(schedule(concurrency=Concurrency.REPLACE), minutes_ago(0), NOW, more_after=False, in_flight=False)
    assert not idle.cancel_in_flight


def test_nothing_due_changes_nothing() -> None:
    plan = plan_slots(schedule(last_slot_at=NOW), [], NOW, more_after=False, in_flight=False)
    assert plan.empty and plan.last_slot_at == NOW


def test_every_slot_is_accounted_for_exactly_once() -> None:
    for concurrency in Concurrency:
        for in_flight in (False, True):
            due = minutes_ago(9, 7, 5, 3, 1, 0)
            plan = plan_slots(
                schedule(concurrency=concurrency, catch_up=3, starting_deadline_seconds=400),
                due,
                NOW,
                more_after=False,
                in_flight=in_flight,
            )
            assert sorted(plan.fire + plan.missed + plan.skipped) == due


def test_slot_task_names_are_deterministic_labels_that_fit_the_table() -> None:
    slot = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert (
        slot_task_name("nightly", slot)
        == slot_task_name("nightly", slot.astimezone())
        == "nightly-" + slot_suffix(slot)
    )
    assert slot_suffix(datetime(1970, 1, 1, tzinfo=UTC)) == "0"
    latest = datetime(4453, 1, 1, tzinfo=UTC)  # base 36 of Unix seconds is 7 digits until 4453
    assert len(slot_task_name("x" * MAX_SCHEDULE_NAME_CHARS, latest)) <= STORED_NAME_CHARS
    assert MAX_SCHEDULE_NAME_CHARS == 37


def test_schedule_fields_are_checked_with_their_field() -> None:
    assert check_schedule_fields("nightly", catch_up=1, keep=10, starting_deadline_seconds=None) == []
    problems = check_schedule_fields("x" * 38, catch_up=0, keep=-1, starting_deadline_seconds=0)
    assert [p.loc for p in problems] == [("name",), ("catch_up",), ("keep",), ("starting_deadline_seconds",)]
    assert "37" in problems[0].message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+30s", NOW + timedelta(seconds=30)),
        ("+10m", NOW + timedelta(minutes=10)),
        ("+2h", NOW + timedelta(hours=2)),
        ("+1d", NOW + timedelta(days=1)),
        ("2026-03-29T02:30:00+01:00", datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
        ("2026-03-29T01:30:00Z", datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
    ],
)
def test_run_at_is_iso_with_an_offset_or_relative(text: str, expected: datetime) -> None:
    assert parse_run_at(text, NOW) == expected


@pytest.mark.parametrize("text", ["2026-03-29T02:30:00", "tomorrow", "+10", "+5w", "", "-10m"])
def test_a_naive_or_garbage_run_at_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(InvalidTaskSpec) as refused:
        parse_run_at(text, NOW)
    assert [p.loc for p in refused.value.problems] == [("run_at",)]
