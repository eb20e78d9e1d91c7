"""Schedules: a task template fired at the slots of a cron spec, and the rules for which slots run.

Pure: the calendar (which instants a cron spec names in a zone) is the `CronCalendar` port; this
module decides, given the slots that came due since the last one handled, which fire, which are
missed (an outage longer than `catch_up` slots, or later than `starting_deadline_seconds`) and which
are skipped (`Forbid` while the previous task is in flight, or `Replace`d by a later slot), and what
the schedule's bookkeeping becomes. The spawner (`app/usecases/spawn.py`) writes the tasks and the
bookkeeping in one fenced compare-and-set (`ScheduleRepository.fire`), so a slot fires at most once
and is never dropped without being counted.

A slot's task is named `<schedule name>-<slot as Unix seconds in base 36>`: deterministic, so a
second leader or a restart computes the same name, and a DNS-1123 label. Base 36 of today's Unix
seconds is 6 characters (7 from 2038 to 4453), and the task table stores names of at most 45, so a
schedule name has at most `MAX_SCHEDULE_NAME_CHARS` = 45 - 1 - 7 = 37 characters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import NewType

from nightwatch.domain.errors import InvalidTaskSpec, NightwatchError, Problem
from nightwatch.domain.names import check_dns1123_label
from nightwatch.domain.submission import STORED_NAME_CHARS

ScheduleId = NewType("ScheduleId", int)

SLOT_SUFFIX_CHARS = 7
"""Base 36 of Unix seconds has 7 digits until the year 4453."""

MAX_SCHEDULE_NAME_CHARS = STORED_NAME_CHARS - 1 - SLOT_SUFFIX_CHARS
"""37: a schedule name, "-" and the slot suffix fit the task table's 45 characters."""

MAX_CATCH_UP = 1000
"""How many missed slots one schedule may run after an outage (CronJob gives up after 100 missed
slots; nightwatch never gives up: it counts them as missed and runs the newest `catch_up`)."""

MAX_HISTORY = 1000
"""The largest `keep` (how many finished tasks of a schedule its view lists)."""

MAX_DEADLINE_SECONDS = 10 * 365 * 86400
"""The largest `starting_deadline_seconds` (ten years: more is no deadline at all)."""

MAX_CRON_CHARS = 255
MAX_TIMEZONE_CHARS = 64
"""The widths the schedule table stores (`cron VARCHAR(255)`, `timezone VARCHAR(64)`)."""


class Concurrency(StrEnum):
    """What a slot does while the schedule's previous task is still in flight (as CronJob)."""

    ALLOW = "Allow"
    FORBID = "Forbid"
    """Skip the slot (counted as skipped)."""
    REPLACE = "Replace"
    """Request cancellation of the in-flight task(s), then fire."""


@dataclass(slots=True)
class Schedule:
    id: ScheduleId
    name: str
    namespace: str
    info: str
    cron: str
    timezone: str = "UTC"
    user_id: int = 0
    concurrency: Concurrency = Concurrency.ALLOW
    starting_deadline_seconds: int | None = None
    catch_up: int = 1
    keep: int = 10
    """How many finished tasks of this schedule its view lists (rows are never deleted)."""
    suspended: bool = False
    version: int = 0
    created_at: datetime | None = None
    last_slot_at: datetime | None = None
    """The latest slot handled (fired, missed or skipped); slots after it are still to come."""
    last_fired_at: datetime | None = None
    """The latest slot that made a task."""
    fired: int = 0
    missed: int = 0
    skipped: int = 0


def slot_suffix(slot: datetime) -> str:
    """The slot as Unix seconds in base 36 (lower case): `tmxk3s` for a time in 2026."""
    seconds = int(slot.astimezone(UTC).timestamp())
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        seconds, rest = divmod(seconds, 36)
        out = digits[rest] + out
        if seconds == 0:
            return out


def slot_task_name(schedule_name: str, slot: datetime) -> str:
    """The deterministic name of the task a schedule makes for a slot."""
    return f"{schedule_name}-{slot_suffix(slot)}"


def check_schedule_fields(
    name: str,
    *,
    catch_up: int,
    keep: int,
    starting_deadline_seconds: int | None,
    cron: str = "",
    timezone: str = "UTC",
) -> list[Problem]:
    """Every problem with the fields this module owns (the name, the bounds); the cron spec and zone
    are the calendar's, `info` and the namespace the submission validator's."""
    problems: list[Problem] = []
    try:
        check_dns1123_label(name, "schedule name")
        if len(name) > MAX_SCHEDULE_NAME_CHARS:
            raise InvalidTaskSpec(
                f"schedule name is {len(name)} characters; at most {MAX_SCHEDULE_NAME_CHARS} leave room for the "
                f"slot suffix in a task name of {STORED_NAME_CHARS}"
            )
    except InvalidTaskSpec as exc:
        problems.append(Problem(("name",), str(exc)))
    if not 1 <= catch_up <= MAX_CATCH_UP:
        problems.append(Problem(("catch_up",), f"catch_up must be from 1 to {MAX_CATCH_UP}, not {catch_up}"))
    if not 0 <= keep <= MAX_HISTORY:
        problems.append(Problem(("keep",), f"keep must be from 0 to {MAX_HISTORY}, not {keep}"))
    if starting_deadline_seconds is not None and not 1 <= starting_deadline_seconds <= MAX_DEADLINE_SECONDS:
        problems.append(
            Problem(
                ("starting_deadline_seconds",),
                f"starting_deadline_seconds must be from 1 to {MAX_DEADLINE_SECONDS}, not {starting_deadline_seconds}",
            )
        )
    for loc, value, width in (("cron", cron, MAX_CRON_CHARS), ("timezone", timezone, MAX_TIMEZONE_CHARS)):
        if len(value) > width:
            problems.append(Problem((loc,), f"{loc} is {len(value)} characters; at most {width} are stored"))
    return problems


@dataclass(frozen=True, slots=True)
class SlotPlan:
    """What to do with the slots that came due: the spawner's whole decision for one schedule."""

    fire: tuple[datetime, ...] = ()
    missed: tuple[datetime, ...] = ()
    skipped: tuple[datetime, ...] = ()
    cancel_in_flight: bool = False
    """Replace: request cancellation of the schedule's in-flight tasks before firing."""
    last_slot_at: datetime | None = None
    """The bookkeeping after this plan: every slot up to here is handled."""
    reasons: dict[datetime, str] = field(default_factory=dict)
    """Why each missed or skipped slot did not fire (for the log)."""

    @property
    def empty(self) -> bool:
        return not (self.fire or self.missed or self.skipped)


def plan_slots(
    schedule: Schedule, due: Sequence[datetime], now: datetime, *, more_after: bool, in_flight: bool
) -> SlotPlan:
    """Decide the slots `due` (earliest first, each after `last_slot_at` and at or before `now`).

    `more_after`: the calendar stopped listing at its bound and more slots are due after the last
    one given, so none of these is among the newest: all are missed (an outage of many slots is
    walked through a bounded window per tick, every slot counted). Otherwise the newest `catch_up`
    slots within `starting_deadline_seconds` of `now` are candidates, the older ones missed; then
    the concurrency policy: Allow fires every candidate, Forbid fires the newest one unless a task
    of the schedule is in flight (then it is skipped), Replace fires the newest one and cancels what
    is in flight. Under Forbid and Replace the older candidates are skipped (they would overlap).
    """
    if not due:
        return SlotPlan(last_slot_at=schedule.last_slot_at)
    reasons: dict[datetime, str] = {}
    if more_after:
        for slot in due:
            reasons[slot] = "missed: more recent slots came due (outage)"
        return SlotPlan(missed=tuple(due), last_slot_at=due[-1], reasons=reasons)
    missed: list[datetime] = []
    candidates: list[datetime] = []
    deadline = schedule.starting_deadline_seconds
    for index, slot in enumerate(due):
        if deadline is not None and now - slot > timedelta(seconds=deadline):
            missed.append(slot)
            reasons[slot] = f"missed: more than starting_deadline_seconds ({deadline}) late"
        elif index < len(due) - schedule.catch_up:
            missed.append(slot)
            reasons[slot] = f"missed: older than the newest catch_up ({schedule.catch_up}) slots"
        else:
            candidates.append(slot)
    fire: list[datetime] = []
    skipped: list[datetime] = []
    cancel = False
    if schedule.concurrency is Concurrency.ALLOW:
        fire = candidates
    elif candidates:
        *older, newest = candidates
        for slot in older:
            skipped.append(slot)
            reasons[slot] = f"skipped: {schedule.concurrency} runs one slot at a time (the newest)"
        if schedule.concurrency is Concurrency.FORBID and in_flight:
            skipped.append(newest)
            reasons[newest] = "skipped: Forbid and the previous task is still in flight"
        else:
            fire = [newest]
            cancel = schedule.concurrency is Concurrency.REPLACE and in_flight
    return SlotPlan(
        fire=tuple(fire),
        missed=tuple(missed),
        skipped=tuple(sorted(skipped)),
        cancel_in_flight=cancel,
        last_slot_at=due[-1],
        reasons=reasons,
    )


_RELATIVE = re.compile(r"^\+(\d{1,9})([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_run_at(text: str, now: datetime, *, loc: str = "run_at") -> datetime:
    """A task's `run_at` from what a user typed: ISO 8601 with an offset (`2026-03-29T02:30:00+01:00`,
    `...Z`), or relative to `now` (`+30s`, `+10m`, `+2h`, `+1d`). A time without an offset is refused:
    it would mean a different instant on each replica's zone. Raises InvalidTaskSpec naming `loc`."""
    value = text.strip()
    relative = _RELATIVE.match(value)
    if relative:
        return now + timedelta(seconds=int(relative.group(1)) * _UNIT_SECONDS[relative.group(2)])
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise _bad_time(loc, f"{loc} {text!r} is neither ISO 8601 with an offset nor +N[smhd]") from None
    return aware_run_at(when, loc=loc)


def aware_run_at(when: datetime, *, loc: str = "run_at") -> datetime:
    """`when` in UTC; InvalidTaskSpec naming `loc` when it has no offset."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise _bad_time(loc, f"{loc} {when.isoformat()!r} has no UTC offset (add Z or +HH:MM)")
    return when.astimezone(UTC)


def _bad_time(loc: str, message: str) -> NightwatchError:
    return InvalidTaskSpec(message, [Problem((loc,), message)])
