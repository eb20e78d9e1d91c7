"""A Job profile's `priority:`: the priority of a task submitted through nightwatch under that profile
when the submitter gives none; a given one (0 included) wins; a row written by plain SQL keeps its own
column; bad entries are refused at config load, with the bounds of `check_priority`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nightwatch.adapters.memory import FakeClock, MemoryTaskRepository
from nightwatch.app.config import ConfigError, load_settings
from nightwatch.app.usecases.submit import SubmitTask
from nightwatch.domain.errors import InvalidTaskSpec
from nightwatch.domain.ports import NewTask
from nightwatch.domain.profiles import ProfileCatalog
from nightwatch.domain.submission import SubmissionPolicy

PROFILES: dict[str, Any] = {"urgent": {"priority": 50}, "backfill": {"priority": -200}, "plain": {}}


def submit() -> tuple[SubmitTask, MemoryTaskRepository]:
    repo = MemoryTaskRepository()
    catalog = ProfileCatalog.build(PROFILES, "default", {"fill": "backfill"})
    return SubmitTask(repo, FakeClock(), SubmissionPolicy(frozenset({"default", "fill"}), catalog)), repo


def test_a_task_without_a_priority_takes_its_profiles() -> None:
    run, _ = submit()
    assert run("a", "default", {"image": "alpine", "profile": "urgent"}).priority == 50
    assert run("b", "fill", {"image": "alpine"}).priority == -200  # the namespace's profile
    assert run("c", "default", {"image": "alpine", "profile": "plain"}).priority == 0
    assert run("d", "default", {"image": "alpine"}).priority == 0  # the built-in default profile


def test_a_given_priority_wins_even_zero() -> None:
    run, _ = submit()
    assert run("a", "default", {"image": "alpine", "profile": "urgent"}, priority=0).priority == 0
    assert run("b", "default", {"image": "alpine", "profile": "urgent"}, priority=-3).priority == -3
    with pytest.raises(InvalidTaskSpec) as caught:
        run("c", "default", {"image": "alpine", "profile": "urgent"}, priority=1001)
    assert [(p.loc, p.message) for p in caught.value.problems] == [
        (("priority",), "priority 1001 is outside -1000..1000")
    ]


def test_a_row_written_by_sql_keeps_its_own_priority_column() -> None:
    _, repo = submit()
    row = repo.add(
        NewTask("by-sql", "default", json.dumps({"image": "alpine", "profile": "urgent"}), 1), FakeClock().now()
    )
    assert repo.get(row.id).priority == 0  # the profile default applies at submit through nightwatch only


def test_config_refuses_bad_priorities_one_line_each_naming_the_field(tmp_path: Any) -> None:
    path = tmp_path / "c.yaml"
    profiles = {"a": {"priority": 5000}, "b": {"priority": "high"}, "c": {"priority": True}, "ok": {"priority": -1000}}
    path.write_text(json.dumps({"profiles": profiles}))
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.lines == [
        "profiles.a.priority: priority 5000 is outside -1000..1000",
        "profiles.b.priority: priority must be an integer from -1000 to 1000, not 'high'",
        "profiles.c.priority: priority must be an integer from -1000 to 1000, not True",
    ]
