"""What nightwatch logged, as the tests read it from pytest's caplog."""

from __future__ import annotations

import pytest


def messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level and r.name.startswith("nightwatch")]
