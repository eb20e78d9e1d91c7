"""The `world` fixture: one replica's use cases on the in-memory adapters (tests.unit.app.usecases.world)."""

from __future__ import annotations

import pytest

from tests.unit.app.usecases.world import World


@pytest.fixture
def world() -> World:
    return World()
