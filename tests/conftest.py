"""Shared pytest options, and the folder markers.

Every test gets the marker of its folder (`unit`, `contract`, `integration`, `system`; see
pyproject.toml), so `-m "not system"` means what the folders mean; theme markers (`hostile`,
`outage`) are written on the tests themselves.

`--long` turns on the long variants of the reliability tests (more crash iterations, the full
20,000-task soak); CI runs the short ones. The long runs' figures go into docs/reliability.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
FOLDER_MARKERS = ("unit", "contract", "integration", "system")


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


@pytest.hookimpl(tryfirst=True)  # before tests/system/conftest.py, which looks for the `system` marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        try:
            folder = item.path.resolve().relative_to(TESTS).parts[0]
        except ValueError:
            continue
        if folder in FOLDER_MARKERS:
            item.add_marker(folder)
