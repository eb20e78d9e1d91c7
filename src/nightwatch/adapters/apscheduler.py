"""The tick scheduler and the schedules' calendar, on APScheduler 3.x.

Each watcher is one job with `max_instances=1` (a slow tick is never run twice at once) and
`coalesce=True` (missed runs collapse into one), started at once rather than one interval late.
A run skipped because the watcher's previous tick is still going is that design at work, so
APScheduler's warning about it is logged at DEBUG: while a dependency is down and every tick waits
out its retries, it would otherwise fire every interval, for every watcher.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor as WakePool
from contextlib import suppress
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from nightwatch.domain.errors import InvalidSchedule, Problem

logger = logging.getLogger(__name__)


def check_cron(spec: str) -> None:
    """Raise ValueError with a readable message for a bad cron spec (a watcher's, or a schedule's:
    one parser, `cron_trigger`, for both)."""
    if spec.strip().startswith("@every"):
        raise ValueError(f"invalid cron spec {spec!r}: @every is for schedules, give a watcher interval_seconds")
    cron_trigger(spec, UTC)


def cron_trigger(spec: str, timezone: tzinfo) -> CronTrigger:
    """A CronTrigger for 5 fields, 6 (a leading seconds field, as robfig/cron allows) or an @alias.

    Day-of-week numbers are cron's (0 or 7 = Sunday), translated to names: CronTrigger's own numbers
    start at 0 = Monday, so `from_crontab("* * * * 1")` would fire on Tuesdays.
    Raises ValueError naming the spec.
    """
    text = " ".join(spec.split())
    fields = _ALIASES.get(text.lower(), text).split(" ")
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        raise ValueError(
            f"invalid cron spec {spec!r}: wanted 5 fields (minute hour day month weekday), 6 with seconds first, "
            f"an alias ({', '.join(sorted(_ALIASES))}) or @every DURATION; got {len(fields)} fields"
        )
    second, minute, hour, day, month, weekday = fields
    try:
        return CronTrigger(
            second=second,
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=_weekdays(weekday),
            timezone=timezone,
        )
    except ValueError as exc:
        raise ValueError(f"invalid cron spec {spec!r}: {exc}") from None


_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _weekdays(field: str) -> str:
    """A cron day-of-week field as CronTrigger names (`*` kept; every other form expanded to a list)."""
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for part in field.lower().split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text.isdigit() and int(step_text) > 0 else None
        if step_text and step is None:
            raise ValueError(f"invalid day-of-week step in {field!r}")
        if body in ("*", "?"):
            first, last = 0, 6
        else:
            low, _, high = body.partition("-")
            first = _day(low, field)
            last = _day(high, field) if high else (6 if step else first)
        if last < first:
            raise ValueError(f"invalid day-of-week range in {field!r}")
        days.update(d % 7 for d in range(first, last + 1, step or 1))
    return ",".join(_DAY_NAMES[d] for d in sorted(days))


def _day(text: str, field: str) -> int:
    if text.isdigit() and 0 <= int(text) <= 7:
        return int(text)
    if text[:3] in _DAY_NAMES and len(text) == 3:
        return _DAY_NAMES.index(text[:3])
    raise ValueError(f"invalid day of week {text!r} in {field!r} (0-7 or sun-sat)")


_EVERY = re.compile(r"^@every\s+((?:\d+[hms])+)$")
_EVERY_PART = re.compile(r"(\d+)([hms])")
_EVERY_UNIT = {"h": 3600, "m": 60, "s": 1}


def every_seconds(spec: str) -> int | None:
    """The interval of `@every 1h30m` in seconds, None for any other spec. Raises ValueError for a
    malformed or zero @every."""
    text = " ".join(spec.split())
    if not text.startswith("@every"):
        return None
    match = _EVERY.match(text)
    if not match:
        raise ValueError(f"invalid cron spec {spec!r}: @every takes a duration such as 30s, 5m or 1h30m")
    seconds = sum(int(n) * _EVERY_UNIT[unit] for n, unit in _EVERY_PART.findall(match.group(1)))
    if seconds < 1:
        raise ValueError(f"invalid cron spec {spec!r}: @every needs at least 1s")
    return seconds


class ApschedulerCalendar:
    """The CronCalendar port on APScheduler 3's CronTrigger, with nightwatch's DST rules on top.

    CronTrigger (3.11, verified in tests/unit/adapters/test_calendar.py) fires a wall time that a
    fall-back change repeats twice, and a fixed-hour time that a spring-forward change skips one gap
    later (02:30 Berlin on 29 March becomes 03:30 CEST). nightwatch's rule instead: a wall time that
    happens twice fires once, the first time, unless the hour field is `*` (an hourly or finer
    schedule runs through the repeated hour as the clock does); a wall time that does not exist
    fires at the first valid instant after the gap (03:00 CEST), once even if another slot is there.
    """

    def check(self, spec: str, timezone: str) -> None:
        problems = []
        zone: tzinfo | None = None
        try:
            zone = _zone(timezone)
        except ValueError as exc:
            problems.append(Problem(("timezone",), str(exc)))
        try:
            if every_seconds(spec) is None:
                cron_trigger(spec, zone or UTC)
        except ValueError as exc:
            problems.append(Problem(("cron",), str(exc)))
        if problems:
            raise InvalidSchedule("; ".join(p.message for p in problems), problems)

    def slots(self, spec: str, timezone: str, after: datetime, *, until: datetime | None, limit: int) -> list[datetime]:
        self.check(spec, timezone)
        after = after.astimezone(UTC)
        interval = every_seconds(spec)
        if interval is not None:
            first = (int(after.timestamp()) // interval + 1) * interval
            out = []
            for n in range(max(limit, 0)):
                slot = datetime.fromtimestamp(first + n * interval, UTC)
                if until is not None and slot > until:
                    break
                out.append(slot)
            return out
        zone = _zone(timezone)
        trigger = cron_trigger(spec, zone)
        hourly = " ".join(_ALIASES.get(spec.strip().lower(), spec).split()).split(" ")[-4] == "*"
        found: list[datetime] = []
        previous: datetime | None = None
        cursor: datetime = after.astimezone(zone)
        while len(found) < limit:
            candidate = trigger.get_next_fire_time(previous, cursor)
            if candidate is None:
                break
            previous = cursor = candidate
            instant = _slot_of(candidate, zone, hourly)
            if instant is None or instant <= after or (found and instant <= found[-1]):
                continue
            if until is not None and instant > until:
                break
            found.append(instant)
        return found


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as Europe/Berlin or UTC)") from None


def _slot_of(candidate: datetime, zone: tzinfo, hourly: bool) -> datetime | None:
    """The UTC instant a CronTrigger candidate stands for under the DST rules, or None to drop it."""
    wall = candidate.replace(tzinfo=None)
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) != wall:
        # In a gap: fold=1 reads it with the offset after the change, fold=0 with the one before; the
        # change happened between the two instants. Find it (to the second).
        if hourly:
            return None
        low, high = min(first, second), max(first, second)
        after_offset = high.astimezone(zone).utcoffset()
        while (high - low).total_seconds() > 1:
            middle = low + (high - low) / 2
            if middle.astimezone(zone).utcoffset() == after_offset:
                high = middle
            else:
                low = middle
        return high.replace(microsecond=0)
    instant = candidate.astimezone(UTC)
    if first != second and instant == max(first, second) and not hourly:
        return None  # the second time this wall time happens: it fired the first time
    return instant


_SKIPPED_RUN = "maximum number of running instances reached"


class _SchedulerLog(logging.LoggerAdapter[logging.Logger]):
    """APScheduler's own logger, with the skipped-run warning demoted to DEBUG."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if isinstance(msg, str) and _SKIPPED_RUN in msg:
            level = logging.DEBUG
        super().log(level, msg, *args, **kwargs)


class ApschedulerTicker:
    def __init__(self, max_workers: int = 8) -> None:
        self._scheduler = BackgroundScheduler(
            logger=_SchedulerLog(logging.getLogger("apscheduler.scheduler"), {}),
            executors={"default": ThreadPoolExecutor(max_workers)},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
            timezone=UTC,
        )
        self._wake_lock = threading.Lock()
        self._running: set[str] = set()
        self._woken: set[str] = set()
        self._paused: set[str] = set()
        self._ticks: dict[str, Callable[[], None]] = {}
        self._stopped = False
        self._wake_pool = WakePool(2, thread_name_prefix="wake")
        """Runs woken ticks at once (APScheduler's own executor runs the scheduled ones)."""

    def add(self, name: str, tick: Callable[[], None], *, interval_seconds: float | None, cron: str | None) -> None:
        tick = self._wakeable(name, tick)
        if cron is not None:
            trigger: CronTrigger | IntervalTrigger = cron_trigger(cron, UTC)
            next_run = None
        else:
            trigger = IntervalTrigger(seconds=interval_seconds or 1.0, timezone=UTC)
            next_run = datetime.now(UTC)
        kwargs = {"next_run_time": next_run} if next_run is not None else {}
        self._scheduler.add_job(tick, trigger, id=name, name=name, replace_existing=True, **kwargs)

    def start(self) -> None:
        self._scheduler.start()

    def pause(self, name: str) -> None:
        with self._wake_lock:
            self._paused.add(name)
        # Leadership can change while the scheduler shuts down; a job already gone needs no pausing.
        with suppress(JobLookupError):
            self._scheduler.pause_job(name)

    def resume(self, name: str) -> None:
        with self._wake_lock:
            self._paused.discard(name)
        with suppress(JobLookupError):
            self._scheduler.resume_job(name)

    def _wakeable(self, name: str, tick: Callable[[], None]) -> Callable[[], None]:
        """`tick`, never twice at once, run again right after itself when woken (or fired) while it ran.

        The ticker keeps the one-at-a-time rule itself (APScheduler's `max_instances` would skip a run
        woken just as the previous one returned, before APScheduler counted it finished)."""

        def run() -> None:
            with self._wake_lock:
                if name in self._running:
                    self._woken.add(name)
                    return
                self._running.add(name)
            self._run_claimed(name, tick)

        self._ticks[name] = tick
        return run

    def _run_claimed(self, name: str, tick: Callable[[], None]) -> None:
        again = True
        try:
            while again:
                with self._wake_lock:
                    self._woken.discard(name)
                tick()
                with self._wake_lock:
                    again = name in self._woken and name not in self._paused
        finally:
            with self._wake_lock:
                self._running.discard(name)
                self._woken.discard(name)

    def wake(self, name: str) -> None:
        with self._wake_lock:
            tick = self._ticks.get(name)
            if tick is None or name in self._paused or self._stopped:
                return
            if name in self._running:
                self._woken.add(name)
                return
            self._running.add(name)
        try:
            self._wake_pool.submit(self._run_claimed, name, tick)
        except RuntimeError:  # the pool is shutting down
            with self._wake_lock:
                self._running.discard(name)

    def shutdown(self, wait: bool) -> None:
        with self._wake_lock:
            self._stopped = True
        if self._scheduler.running:
            self._scheduler.shutdown(wait=wait)
        self._wake_pool.shutdown(wait=wait)
