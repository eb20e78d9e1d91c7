"""The watcher registry: built-ins, configuration overrides, and third-party entry points."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nightwatch.adapters.memory import FakeClock, FixedFence, MemoryJobRunner, MemoryTaskRepository
from nightwatch.app.usecases.dispatch import DispatchSettings, DispatchTasks
from nightwatch.app.watchers import (
    WatcherContext,
    WatcherRegistry,
    WatcherSpec,
    WatcherTiming,
    default_registry,
)
from nightwatch.domain.submission import SubmissionPolicy


@pytest.fixture
def context() -> WatcherContext:
    repo = MemoryTaskRepository()
    return WatcherContext(
        repo, MemoryJobRunner(), FakeClock(), FixedFence(repo.advance_epoch()), DispatchSettings(), SubmissionPolicy()
    )


def test_builtins_run_with_their_default_timing(context: WatcherContext) -> None:
    built = {w.name: w for w in default_registry(load_plugins=False).build(context, {})}
    assert set(built) == {"dispatch", "sync", "cancel", "release", "spawn", "notify", "capture_logs"}
    assert built["spawn"].interval_seconds == 1.0  # a seconds field can name every second
    assert built["dispatch"].interval_seconds == 1.0 and built["sync"].interval_seconds == 2.0
    assert built["release"].interval_seconds == 60.0  # leftovers only: sync releases as it stores outcomes
    assert isinstance(built["dispatch"].run, DispatchTasks)
    assert all(w.leader_only for w in built.values())


def test_configuration_disables_and_retimes(context: WatcherContext) -> None:
    schedules = {
        "cancel": WatcherTiming(enabled=False),
        "sync": WatcherTiming(cron="*/5 * * * *"),
        "dispatch": WatcherTiming(interval_seconds=0.25),
    }
    built = {w.name: w for w in default_registry(load_plugins=False).build(context, schedules)}
    assert set(built) == {"dispatch", "sync", "release", "spawn", "notify", "capture_logs"}
    assert (built["sync"].interval_seconds, built["sync"].cron) == (None, "*/5 * * * *")
    assert built["dispatch"].interval_seconds == 0.25


def test_unknown_watcher_names_in_configuration_are_an_error(context: WatcherContext) -> None:
    with pytest.raises(ValueError, match="unknown watchers: dispatchh"):
        default_registry(load_plugins=False).build(context, {"dispatchh": WatcherTiming()})


def test_a_spec_needs_exactly_one_timing_and_a_unique_name() -> None:
    registry = WatcherRegistry()
    with pytest.raises(ValueError, match="exactly one"):
        registry.register(WatcherSpec("x", lambda ctx: lambda: None))
    registry.register(WatcherSpec("x", lambda ctx: lambda: None, interval_seconds=1))
    with pytest.raises(ValueError, match="already registered"):
        registry.register(WatcherSpec("x", lambda ctx: lambda: None, interval_seconds=1))


PLUGIN = """
from nightwatch.app.watchers import WatcherSpec

RUNS = []

def _build(ctx):
    def run():
        RUNS.append(dict(ctx.repository.count_by_status()))
    return run

spec = WatcherSpec("report", _build, cron="0 * * * *", leader_only=False)

def broken():
    raise RuntimeError("plugin bug")
"""


@pytest.fixture
def installed_plugin(tmp_path: Path) -> Iterator[None]:
    """A real installed distribution (dist-info on sys.path) declaring two watcher entry points."""
    (tmp_path / "nw_plugin_example.py").write_text(PLUGIN)
    dist = tmp_path / "nw_plugin_example-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: nw-plugin-example\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[nightwatch.watchers]\nreport = nw_plugin_example:spec\nbroken = nw_plugin_example:broken\n"
    )
    sys.path.insert(0, str(tmp_path))
    yield
    sys.path.remove(str(tmp_path))
    sys.modules.pop("nw_plugin_example", None)


def test_third_party_watchers_load_from_entry_points(
    installed_plugin: None, context: WatcherContext, caplog: pytest.LogCaptureFixture
) -> None:
    registry = default_registry()
    assert "report" in registry.names()
    assert "could not load watcher entry point 'broken'" in caplog.text  # a broken plugin is skipped
    built = {w.name: w for w in registry.build(context, {})}
    report = built["report"]
    assert report.cron == "0 * * * *" and not report.leader_only
    report.run()
    import nw_plugin_example  # type: ignore[import-not-found]

    assert nw_plugin_example.RUNS == [{}]
