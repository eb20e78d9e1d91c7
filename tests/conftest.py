"""Shared pytest options.

`--long` turns on the long variants of the reliability tests (more crash iterations, the full
20,000-task soak); CI runs the short ones. The long runs' figures go into docs/reliability.md.
"""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--long",
        action="store_true",
        default=False,
        help="run the long variants of the reliability tests (crash loop, dependency faults, soak)",
    )


@pytest.fixture(scope="session")
def long_run(request: pytest.FixtureRequest) -> bool:
    """True when the long variants were asked for with --long."""
    return bool(request.config.getoption("--long"))
