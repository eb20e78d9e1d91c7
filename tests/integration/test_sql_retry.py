"""The retry helper's classification and budget, and the shared missing-service rule.

No server needed: errors are built the way the drivers raise them.
"""

from __future__ import annotations

import sqlite3

import psycopg
import pymysql
import pytest
from sqlalchemy import exc

from nightwatch.adapters.sql.retry import DbRetry, with_retry
from nightwatch.domain.errors import PermanentError, RetryableError
from tests.support.services import require_service


def _wrapped(orig: Exception) -> exc.DBAPIError:
    return exc.OperationalError("SELECT 1", {}, orig)


@pytest.mark.parametrize(
    "orig",
    [
        pymysql.err.OperationalError(2006, "MySQL server has gone away"),
        pymysql.err.OperationalError(2013, "Lost connection"),
        pymysql.err.OperationalError(2003, "Can't connect"),
        pymysql.err.OperationalError(1213, "Deadlock found"),
        pymysql.err.OperationalError(1205, "Lock wait timeout exceeded"),
        pymysql.err.OperationalError(1205, "Lock wait timeout exceeded", sqlstate="HY000"),  # as the server sends it
        sqlite3.OperationalError("database is locked"),
        psycopg.errors.SerializationFailure("could not serialize access due to concurrent update"),
        psycopg.errors.DeadlockDetected("deadlock detected"),
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        psycopg.errors.ConnectionFailure("connection failure"),
        psycopg.OperationalError("connection to server at 127.0.0.1 failed: Connection refused"),
    ],
)
def test_transient_errors_are_retried_then_raised_as_retryable(orig: Exception) -> None:
    calls: list[int] = []
    sleeps: list[float] = []

    def fail() -> None:
        calls.append(1)
        raise _wrapped(orig)

    policy = DbRetry(attempts=4, base_delay=0.2, max_delay=2.0)
    with pytest.raises(RetryableError) as raised:
        with_retry(fail, what="probe", policy=policy, sleep=sleeps.append)
    assert len(calls) == 4 and sleeps == [0.2, 0.4, 0.8]
    assert "\n" not in str(raised.value)


def test_a_transient_error_then_success_returns_the_result() -> None:
    attempts = iter([_wrapped(pymysql.err.OperationalError(2006, "gone")), None])

    def flaky() -> str:
        error = next(attempts)
        if error is not None:
            raise error
        return "ok"

    assert with_retry(flaky, what="probe", policy=DbRetry(), sleep=lambda _s: None) == "ok"


def test_permanent_errors_are_not_retried() -> None:
    calls: list[int] = []

    def fail() -> None:
        calls.append(1)
        raise exc.ProgrammingError("SELECT 1", {}, pymysql.err.ProgrammingError(1146, "Table 'x.task' doesn't exist"))

    with pytest.raises(PermanentError):
        with_retry(fail, what="probe", policy=DbRetry(), sleep=lambda _s: None)
    assert calls == [1]


@pytest.mark.parametrize(
    "orig",
    [
        psycopg.errors.UndefinedTable('relation "task" does not exist'),
        psycopg.errors.InsufficientPrivilege("permission denied for table task"),
        psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
    ],
)
def test_permanent_postgres_errors_are_not_retried(orig: Exception) -> None:
    calls: list[int] = []

    def fail() -> None:
        calls.append(1)
        raise exc.OperationalError("SELECT 1", {}, orig)

    with pytest.raises(PermanentError):
        with_retry(fail, what="probe", policy=DbRetry(), sleep=lambda _s: None)
    assert calls == [1]


def test_a_missing_service_fails_under_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_service("127.0.0.1", 1, "Nothing")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="not reachable"):
        require_service("127.0.0.1", 1, "Nothing")
