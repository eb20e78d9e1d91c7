"""`nightwatch queue list|pause|resume`, `submit --priority/--queue` and the `waiting` field of `show` and
`list --json`, in-process on a SQLite file, with the queues given as NIGHTWATCH_QUEUES JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from nightwatch.app.cli import main
from tests.support.sql_backends import sqlite_url

Run = Callable[..., tuple[int, str, str]]
QUEUES = {"team-a": {"namespaces": ["default"], "max_in_flight": 5}}


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Run]:
    with sqlite_url() as url:
        monkeypatch.setenv("NIGHTWATCH_DATABASE__URL", url)
        monkeypatch.setenv("NIGHTWATCH_QUEUES", json.dumps(QUEUES))

        def run(*args: str) -> tuple[int, str, str]:
            capsys.readouterr()
            code = main(list(args))
            out, err = capsys.readouterr()
            return code, out, err

        yield run


def test_queue_commands_and_why_a_task_waits(cli: Run) -> None:
    run = cli
    assert run("submit", "--name", "a", "--image", "alpine", "--priority", "7", "--queue", "team-a")[0] == 0
    code, out, err = run("submit", "--name", "b", "--image", "alpine", "--queue", "nope")
    assert code != 0 and "info.queue 'nope' is not a configured queue (team-a)" in err
    code, out, err = run("submit", "--name", "c", "--image", "alpine", "--priority", "1001")
    assert code != 0 and "priority 1001 is outside -1000..1000" in err
    assert run("queue", "pause", "team-a")[0] == 0
    code, out, _ = run("queue", "list")
    assert code == 0 and out.split("\n")[1].split() == ["team-a", "paused", "0", "5", "-", "no"]
    code, out, _ = run("show", "1")
    shown = json.loads(out)
    assert (shown["priority"], shown["waiting"]) == (7, "paused: queue team-a")
    run("queue", "resume", "team-a")
    code, out, _ = run("show", "1")
    assert json.loads(out)["waiting"] == "position 1 in queue team-a"
    code, out, _ = run("list", "--json")
    assert json.loads(out.splitlines()[0])["waiting"] is None  # a list row: only run_at / retry times
    code, _, err = run("queue", "pause", "nope")
    assert code != 0 and "no queue named 'nope' (team-a)" in err
