"""The CronCalendar on CronTrigger: fire times across the 2026 DST changes (EU 29 Mar / 25 Oct,
US 8 Mar / 1 Nov) against tables worked out by hand, the 6-field form, aliases, @every, day-of-week
numbers as cron means them, and bad specs and zones refused naming their field."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger

from nightwatch.adapters.apscheduler import ApschedulerCalendar, check_cron
from nightwatch.domain.errors import InvalidSchedule

CAL = ApschedulerCalendar()


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def slots(spec: str, zone: str, after: datetime, n: int) -> list[datetime]:
    return CAL.slots(spec, zone, after, until=None, limit=n)


def test_berlin_spring_forward_a_missing_wall_time_fires_once_at_the_first_valid_instant() -> None:
    # 29 Mar 2026: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist -> 03:00 CEST = 01:00 UTC.
    assert slots("30 2 * * *", "Europe/Berlin", utc(2026, 3, 28), 3) == [
        utc(2026, 3, 28, 1, 30),  # 02:30 CET
        utc(2026, 3, 29, 1, 0),  # 03:00 CEST, the first instant after the gap
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
    ]


def test_berlin_spring_forward_two_slots_in_the_gap_and_one_after_fire_once_each_instant() -> None:
    # 02:00, 02:30 (both in the gap) and 03:00 all mean 01:00 UTC: one slot; then 03:30 CEST.
    got = slots("0 0,30 2,3 * * *", "Europe/Berlin", utc(2026, 3, 29), 3)
    assert got == [utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 1, 30), utc(2026, 3, 30, 0, 0)]


def test_berlin_fall_back_a_repeated_wall_time_fires_once_the_first_time() -> None:
    # 25 Oct 2026: 03:00 CEST falls back to 02:00 CET; 02:30 happens at 00:30 and at 01:30 UTC.
    assert slots("30 2 * * *", "Europe/Berlin", utc(2026, 10, 24), 3) == [
        utc(2026, 10, 24, 0, 30),
        utc(2026, 10, 25, 0, 30),  # the first 02:30 (CEST); not the second one (CET)
        utc(2026, 10, 26, 1, 30),
    ]


def test_crontrigger_itself_fires_the_repeated_wall_time_twice() -> None:
    # Why the adapter has rules of its own (the behaviour it corrects, as of APScheduler 3.11).
    trigger = CronTrigger(hour="2", minute="30", timezone=ZoneInfo("Europe/Berlin"))
    first = trigger.get_next_fire_time(None, utc(2026, 10, 25))
    second = trigger.get_next_fire_time(first, first)
    assert (first.astimezone(UTC), second.astimezone(UTC)) == (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30))


def test_an_hourly_schedule_runs_through_the_repeated_hour_and_skips_the_missing_one() -> None:
    assert slots("30 * * * *", "Europe/Berlin", utc(2026, 10, 24, 23), 4) == [
        utc(2026, 10, 24, 23, 30),
        utc(2026, 10, 25, 0, 30),  # 02:30 CEST
        utc(2026, 10, 25, 1, 30),  # 02:30 CET: another hour, so it runs
        utc(2026, 10, 25, 2, 30),
    ]
    assert slots("30 * * * *", "Europe/Berlin", utc(2026, 3, 29, 0), 2) == [
        utc(2026, 3, 29, 0, 30),  # 01:30 CET
        utc(2026, 3, 29, 1, 30),  # 03:30 CEST: the hour 02 did not happen
    ]


def test_new_york_spring_forward() -> None:
    # 8 Mar 2026: 02:00 EST jumps to 03:00 EDT. 02:00 and 02:30 -> 03:00 EDT (07:00 UTC), once.
    got = slots("0,30 1-3 * * *", "America/New_York", utc(2026, 3, 8, 5), 5)
    assert got == [
        utc(2026, 3, 8, 6, 0),  # 01:00 EST
        utc(2026, 3, 8, 6, 30),  # 01:30 EST
        utc(2026, 3, 8, 7, 0),  # 02:00/02:30 (missing) and 03:00 EDT: one instant
        utc(2026, 3, 8, 7, 30),  # 03:30 EDT
        utc(2026, 3, 9, 5, 0),  # 01:00 EDT next day
    ]


def test_new_york_fall_back() -> None:
    # 1 Nov 2026: 02:00 EDT falls back to 01:00 EST; 01:00 and 01:30 happen twice: the first only.
    got = slots("0,30 1-3 * * *", "America/New_York", utc(2026, 11, 1, 4), 7)
    assert got == [
        utc(2026, 11, 1, 5, 0),  # 01:00 EDT
        utc(2026, 11, 1, 5, 30),  # 01:30 EDT
        utc(2026, 11, 1, 7, 0),  # 02:00 EST (01:00 and 01:30 EST skipped)
        utc(2026, 11, 1, 7, 30),
        utc(2026, 11, 1, 8, 0),
        utc(2026, 11, 1, 8, 30),
        utc(2026, 11, 2, 6, 0),
    ]


def test_daily_in_new_york_keeps_its_wall_clock_time_across_both_changes() -> None:
    got = slots("0 9 * * *", "America/New_York", utc(2026, 3, 7), 3) + slots(
        "0 9 * * *", "America/New_York", utc(2026, 10, 31), 3
    )
    assert got == [
        utc(2026, 3, 7, 14),
        utc(2026, 3, 8, 13),
        utc(2026, 3, 9, 13),
        utc(2026, 10, 31, 13),
        utc(2026, 11, 1, 14),
        utc(2026, 11, 2, 14),
    ]


def test_six_fields_have_seconds_first() -> None:
    assert slots("*/15 * * * * *", "UTC", utc(2026, 1, 1), 3) == [
        utc(2026, 1, 1, 0, 0, 15),
        utc(2026, 1, 1, 0, 0, 30),
        utc(2026, 1, 1, 0, 0, 45),
    ]


@pytest.mark.parametrize(
    ("alias", "first"),
    [
        ("@hourly", utc(2026, 1, 1, 1)),
        ("@daily", utc(2026, 1, 2)),
        ("@midnight", utc(2026, 1, 2)),
        ("@weekly", utc(2026, 1, 4)),  # the first Sunday
        ("@monthly", utc(2026, 2, 1)),
        ("@yearly", utc(2027, 1, 1)),
        ("@annually", utc(2027, 1, 1)),
    ],
)
def test_aliases(alias: str, first: datetime) -> None:
    assert slots(alias, "UTC", utc(2026, 1, 1), 1) == [first]


def test_every_is_anchored_on_the_unix_epoch_and_ignores_dst() -> None:
    assert slots("@every 90s", "UTC", utc(2026, 1, 1), 2) == [utc(2026, 1, 1, 0, 1, 30), utc(2026, 1, 1, 0, 3)]
    assert slots("@every 1h30m", "Europe/Berlin", utc(2026, 3, 29), 2) == [utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 3)]


def test_day_of_week_numbers_are_crons_zero_is_sunday() -> None:
    # CronTrigger's own numbers start at Monday; 1 must mean Monday (5 Jan 2026).
    assert slots("0 9 * * 1", "UTC", utc(2026, 1, 1), 1) == [utc(2026, 1, 5, 9)]
    assert slots("0 9 * * 0-1", "UTC", utc(2026, 1, 1), 2) == [utc(2026, 1, 4, 9), utc(2026, 1, 5, 9)]
    assert slots("0 9 * * 7", "UTC", utc(2026, 1, 1), 1) == [utc(2026, 1, 4, 9)]
    assert slots("0 9 * * MON-FRI", "UTC", utc(2026, 1, 2, 10), 1) == [utc(2026, 1, 5, 9)]


def test_until_and_limit_bound_the_listing() -> None:
    assert CAL.slots("* * * * *", "UTC", utc(2026, 1, 1), until=utc(2026, 1, 1, 0, 3), limit=10) == [
        utc(2026, 1, 1, 0, 1),
        utc(2026, 1, 1, 0, 2),
        utc(2026, 1, 1, 0, 3),
    ]
    assert len(CAL.slots("* * * * * *", "UTC", utc(2026, 1, 1), until=None, limit=5)) == 5


@pytest.mark.parametrize(
    ("spec", "zone", "field"),
    [
        ("61 * * * *", "UTC", "cron"),
        ("* * * *", "UTC", "cron"),
        ("* * * * * * *", "UTC", "cron"),
        ("@every 0s", "UTC", "cron"),
        ("@every soon", "UTC", "cron"),
        ("@often", "UTC", "cron"),
        ("* * * * 8", "UTC", "cron"),
        ("* * * * *", "Mars/Olympus_Mons", "timezone"),
        ("* * * * *", "", "timezone"),
    ],
)
def test_bad_specs_and_unknown_zones_are_refused_naming_the_field(spec: str, zone: str, field: str) -> None:
    with pytest.raises(InvalidSchedule) as refused:
        CAL.check(spec, zone)
    assert [p.loc for p in refused.value.problems] == [(field,)]
    assert refused.value.problems[0].message


def test_watcher_specs_share_the_parser_but_not_every() -> None:
    check_cron("*/5 * * * *")
    check_cron("*/10 * * * * *")
    check_cron("@hourly")
    with pytest.raises(ValueError, match="interval_seconds"):
        check_cron("@every 5s")
