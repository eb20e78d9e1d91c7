"""Bounded retries of transient database failures, and translation of the rest into domain errors.

A service that runs for months sees the server restart, connections dropped by a proxy, deadlocks
and lock-wait timeouts. Those are retried here with a short exponential backoff (well under ten
seconds in all) and then raised as `RetryableError`; the caller's next tick tries again. Anything
else (a missing table, a syntax error) is a `PermanentError`. No SQLAlchemy or driver exception
leaves the adapter. Each retry is logged at DEBUG and a success after retries at INFO: an outage
is reported by the caller once per failed call, not once per attempt.

Whole transactions are retried, including compare-and-set writes whose COMMIT failed: a failed
COMMIT is ambiguous (it may have committed), and re-running the batch is safe because the
compare-and-set then matches nothing and reports those rows as lost; the caller re-reads them on
its next tick. Nothing is ever written twice.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import psycopg
from sqlalchemy import exc

from nightwatch.domain.errors import NightwatchError, PermanentError, RetryableError

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT_MYSQL_CODES = frozenset(
    {
        1040,  # too many connections
        1205,  # lock wait timeout exceeded
        1213,  # deadlock found
        2003,  # can't connect (refused)
        2006,  # server has gone away
        2013,  # lost connection during query
        2014,  # commands out of sync (a broken connection)
        2055,  # lost connection (read/write error)
    }
)

TRANSIENT_POSTGRES_STATES = frozenset(
    {
        "40001",  # serialization failure
        "40P01",  # deadlock detected
        "55P03",  # lock not available
        "53300",  # too many connections
        "57P01",  # admin shutdown (the server is restarting)
        "57P02",  # crash shutdown
        "57P03",  # cannot connect now (starting up)
    }
)
"""Plus every connection exception (class 08)."""

POSTGRES_UNIQUE_VIOLATION = "23505"


@dataclass(frozen=True, slots=True)
class DbRetry:
    """How hard to try: `attempts` tries, sleeping base, 2*base, 4*base ... (capped) in between."""

    attempts: int = 4
    base_delay: float = 0.2
    max_delay: float = 2.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_delay, self.base_delay * (2**attempt)))


def mysql_code(error: BaseException) -> int | None:
    """The MySQL error number of a driver error (PyMySQL puts it in args[0]), if it has one."""
    orig = error.orig if isinstance(error, exc.DBAPIError) else error
    args = getattr(orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a PostgreSQL driver error (psycopg's `sqlstate`), if it has one.

    psycopg errors only: PyMySQL reports a SQLSTATE too, but MySQL's (HY000 for a lock wait timeout,
    23000 for any integrity error) are too coarse; MySQL errors go by their error number."""
    orig = error.orig if isinstance(error, exc.DBAPIError) else error
    if not isinstance(orig, psycopg.Error):
        return None
    state = orig.sqlstate
    return state if isinstance(state, str) else None


def is_duplicate_key(error: exc.IntegrityError) -> bool:
    """A unique-key violation: SQLSTATE 23505 on PostgreSQL, 1062 on MySQL; SQLite has no code."""
    state = sqlstate(error)
    if state is not None:
        return state == POSTGRES_UNIQUE_VIOLATION
    return mysql_code(error) in (None, 1062)


def is_transient(error: BaseException) -> bool:
    if isinstance(error, exc.DBAPIError):
        if error.connection_invalidated:
            return True
        state = sqlstate(error)
        if state is not None:
            return state in TRANSIENT_POSTGRES_STATES or state.startswith("08")
        if isinstance(error.orig, sqlite3.OperationalError):
            text = str(error.orig).lower()
            return "locked" in text or "busy" in text
        code = mysql_code(error)
        if code is not None:
            return code in TRANSIENT_MYSQL_CODES
        return isinstance(error, exc.OperationalError | exc.InterfaceError)
    return isinstance(error, exc.DisconnectionError | exc.TimeoutError)


def one_line(error: BaseException) -> str:
    """A driver error as one short line (no SQL, no parameters: they can be megabytes)."""
    orig = error.orig if isinstance(error, exc.DBAPIError) else error
    text = " ".join(str(orig).split())
    return text if len(text) <= 300 else text[:297] + "..."


def translate(error: BaseException, what: str) -> NightwatchError:
    if is_transient(error):
        return RetryableError(f"{what}: database unavailable: {one_line(error)}")
    return PermanentError(f"{what}: {one_line(error)}")


def with_retry(
    operation: Callable[[], T],
    *,
    what: str,
    policy: DbRetry,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `operation` (a whole transaction), retrying transient failures; raise domain errors only."""
    for attempt in range(policy.attempts):
        try:
            result = operation()
        except NightwatchError:
            raise
        except exc.SQLAlchemyError as error:
            if not is_transient(error):
                raise translate(error, what) from error
            if attempt + 1 >= policy.attempts:
                raise translate(error, what) from error
            delay = policy.delay(attempt)
            # DEBUG: the caller reports a final failure, and while the server is down every call fails
            # this way several times; a blip that a retry got past is reported once, below.
            log.debug("%s failed (%s); retrying in %.1fs", what, one_line(error), delay)
            sleep(delay)
        else:
            if attempt:
                log.info("%s succeeded after %d attempts", what, attempt + 1)
            return result
    raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover
