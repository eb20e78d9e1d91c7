"""with_retry: database retries are logged at DEBUG, a success after retries once at INFO."""

from __future__ import annotations

import logging

import pymysql
import pytest
from sqlalchemy import exc

from nightwatch.adapters.sql.retry import DbRetry, with_retry
from nightwatch.domain.errors import RetryableError
from tests.support.logs import messages


@pytest.mark.outage
def test_database_retries_log_at_debug_and_a_retried_success_once_at_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="nightwatch")
    refused = exc.OperationalError("SELECT 1", {}, pymysql.err.OperationalError(2003, "Can't connect"))

    def down() -> None:
        raise refused

    with pytest.raises(RetryableError):
        with_retry(down, what="ping", policy=DbRetry(attempts=4), sleep=lambda _s: None)
    assert messages(caplog, logging.WARNING) == []
    assert len(messages(caplog, logging.DEBUG)) == 3

    caplog.clear()
    attempts = iter([refused, None])

    def blip() -> str:
        error = next(attempts)
        if error is not None:
            raise error
        return "ok"

    assert with_retry(blip, what="ping", policy=DbRetry(), sleep=lambda _s: None) == "ok"
    assert messages(caplog, logging.INFO) == ["ping succeeded after 2 attempts"]
