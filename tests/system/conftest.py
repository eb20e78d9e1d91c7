"""System-test options: under --long, the long variants get a long pytest timeout.

A CI run keeps each module's own `pytest.mark.timeout`; a long run (200 crash iterations, a 20,000-task
soak) would hit it, so it is replaced (prepended: the closest marker wins) by `LONG_RUN_TIMEOUT`.
"""

from __future__ import annotations

import pytest

LONG_RUN_TIMEOUT = 4 * 3600


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--long"):
        return
    for item in items:
        if item.get_closest_marker("system") is not None:
            item.add_marker(pytest.mark.timeout(LONG_RUN_TIMEOUT), append=False)
