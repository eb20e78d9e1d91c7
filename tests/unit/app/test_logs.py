"""Log lines: one per event, JSON when asked."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from nightwatch.app.logs import JsonFormatter, configure_logging


def test_json_lines_carry_level_logger_message_and_exception() -> None:
    formatter = JsonFormatter()
    try:
        raise ValueError("bad row")
    except ValueError:
        record = logging.getLogger("nightwatch.x").makeRecord(
            "nightwatch.x", logging.ERROR, __file__, 1, "task %s failed", (7,), exc_info=True
        )
        import sys

        record.exc_info = sys.exc_info()
    line = formatter.format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "ERROR" and entry["logger"] == "nightwatch.x"
    assert entry["message"] == "task 7 failed" and "ValueError: bad row" in entry["exception"]


@pytest.fixture
def root_logging() -> Iterator[None]:
    """configure_logging() replaces the root handlers with one on this test's (captured, soon closed)
    stderr; later tests that log at INFO would print "--- Logging error ---" into their own output."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    noisy = {name: logging.getLogger(name).level for name in ("apscheduler", "urllib3", "kubernetes")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, was in noisy.items():
        logging.getLogger(name).setLevel(was)


@pytest.mark.usefixtures("root_logging")
def test_configure_logging_sets_level_and_format(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("WARNING", "json")
    logging.getLogger("nightwatch.test").info("hidden")
    logging.getLogger("nightwatch.test").warning("shown %d", 1)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and json.loads(err[0])["message"] == "shown 1"
    configure_logging("INFO", "text")
