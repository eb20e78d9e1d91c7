"""The CLI's two modes behind one TaskGateway: the same scenario on the database directly and
through a replica's REST API (`--server`) prints the same lines and exits with the same codes;
`list` is newest first in both and `--before ID` pages in both."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from nightwatch.adapters.sql import SqlTaskRepository, create_engine_for, init_database
from nightwatch.app.cli import main
from nightwatch.app.container import build_container
from nightwatch.app.http import HttpEndpoint
from nightwatch.domain.model import TaskId

TOKEN = "gateway-test-token-0123456789"

Outcome = tuple[int, str, str]


LONG_MESSAGE = "boom " * 400
"""Longer than a listed message may be: `list` cuts it the same in both modes, `show` has it all."""


def finish(url: str, task_id: int, message: str = "boom") -> None:
    """Fail a task as the leader would, so cancelling it is refused."""
    engine = create_engine_for(url)
    repository = SqlTaskRepository(engine)
    task = repository.get(TaskId(task_id))
    assert task.created_at is not None
    repository.apply([task.fail(message, task.created_at)], epoch=repository.advance_epoch())
    engine.dispose()


class Cli:
    """`nightwatch ...` in-process, on one SQLite file, with or without `--server`."""

    def __init__(self, url: str, capsys: pytest.CaptureFixture[str], server: str | None) -> None:
        self.url = url
        self.capsys = capsys
        self.remote = ["--server", server, "--token", TOKEN] if server else []

    def __call__(self, command: str, *args: str) -> Outcome:
        self.capsys.readouterr()
        code = main([command, *self.remote, *args])
        out, err = self.capsys.readouterr()
        return code, _steady(out), err

    def ids(self, *args: str) -> list[int]:
        code, out, err = self("list", "--json", *args)
        assert code == 0, err
        return [json.loads(line)["id"] for line in out.splitlines()]


def _steady(text: str) -> str:
    """Output without what differs between two runs: timestamps and ages, and the columns they widen."""
    text = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+(\+00:00|Z)?", "<when>", text)
    return re.sub(r" +", " ", re.sub(r"\b\d+[smhd]\b", "<age>", text))


@pytest.fixture(autouse=True)
def _no_server_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NIGHTWATCH_SERVER", "NIGHTWATCH_TOKEN"):
        monkeypatch.delenv(name, raising=False)


@contextmanager
def cli_in(
    mode: str, directory: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Cli]:
    """The CLI on a fresh SQLite file in `directory`: directly (local) or through a server on it."""
    directory.mkdir()
    url = f"sqlite:///{directory / 'nightwatch.db'}"
    init_database(url)
    monkeypatch.setenv("NIGHTWATCH_DATABASE__URL", url)
    if mode == "local":
        yield Cli(url, capsys, None)
        return
    container = build_container(
        {"database": {"url": url}, "api": {"tokens": [{"token": TOKEN, "user_id": 0}]}}, load_plugins=False
    )
    endpoint = HttpEndpoint("127.0.0.1", 0, container.web_app())
    endpoint.start()
    try:
        yield Cli(url, capsys, f"http://127.0.0.1:{endpoint.port}")
    finally:
        endpoint.stop()
        container.shutdown_resources()


@pytest.fixture(params=["local", "server"])
def cli(
    request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Cli]:
    with cli_in(request.param, tmp_path / request.param, capsys, monkeypatch) as running:
        yield running


def scenario(cli: Cli) -> list[Outcome]:
    outcomes = [
        cli("submit", "--name", "first", "--image", "busybox", "--", "echo", "hi"),
        # Compact: the API takes `info` as an object and stores it compact; the database keeps the text.
        cli("submit", "--name", "second", "--info", '{"image":"busybox","env":{"A":"1"}}'),
        cli("submit", "--name", "third", "--image", "busybox"),
        cli("submit", "--name", "Bad_Name", "--info", '{"command": "x"}'),
        cli("submit", "--name", "worse", "--info", "[1]"),
        cli("submit", "--name", "first", "--image", "busybox"),
        cli("list", "--json"),
        cli("list"),
        cli("list", "--json", "--before", "3"),
        cli("list", "--json", "--limit", "1"),
        cli("list", "--json", "--status", "Normal", "--before", "2"),
        cli("show", "2"),
        cli("cancel", "3"),
        cli("cancel", "3"),
        cli("show", "424242"),
        cli("list", "--after", "1"),
    ]
    finish(cli.url, 1, LONG_MESSAGE)
    return [*outcomes, cli("cancel", "1"), cli("list", "--json", "--status", "Failed"), cli("show", "1")]


def test_the_same_scenario_prints_the_same_in_both_modes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    results = {}
    for mode in ("local", "server"):
        with cli_in(mode, tmp_path / mode, capsys, monkeypatch) as cli:
            results[mode] = scenario(cli)
    for step, (local, remote) in enumerate(zip(results["local"], results["server"], strict=True)):
        assert local == remote, f"step {step}"
    codes = [code for code, _, _ in results["local"]]
    assert codes == [0, 0, 0, 2, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 3, 2, 2, 0, 0]
    assert results["local"][3][2].splitlines() == [
        "nightwatch: name: task name 'Bad_Name' is not a DNS-1123 label (lower-case letters, digits and '-', "
        "starting and ending with a letter or digit)",
        "nightwatch: info.image: invalid info: image: Field required",
        "nightwatch: info.command: invalid info: command: Value error, must be a list of strings",
    ]
    listed = [json.loads(line) for line in results["local"][6][1].splitlines()]
    assert [item["name"] for item in listed] == ["third", "second", "first"]  # newest first
    # Listings are summaries: no info, the message cut to 1024 characters; `show` has both whole.
    assert all("info" not in item for item in listed)
    (failed,) = [json.loads(line) for line in results["local"][17][1].splitlines()]
    assert "info" not in failed and failed["message"] == LONG_MESSAGE[:1023] + "\u2026"
    shown = json.loads(results["local"][18][1])
    assert shown["message"] == LONG_MESSAGE and json.loads(shown["info"])["image"] == "busybox"


def test_list_is_newest_first_and_before_pages_in_both_modes(cli: Cli) -> None:
    for n in range(7):
        assert cli("submit", "--name", f"t{n}", "--image", "busybox")[0] == 0
    assert cli.ids() == [7, 6, 5, 4, 3, 2, 1]
    assert cli.ids("--limit", "3") == [7, 6, 5]
    assert cli.ids("--limit", "3", "--before", "5") == [4, 3, 2]
    assert cli.ids("--before", "2") == [1]
    assert cli.ids("--before", "1") == []
    cli("cancel", "4")
    finish(cli.url, 6)
    assert cli.ids("--status", "Normal", "--before", "7") == [5, 4, 3, 2, 1]
    assert cli.ids("--status", "Failed", "--status", "Normal", "--limit", "2") == [7, 6]
    code, _, err = cli("list", "--after", "3")
    assert code == 2 and "--after is replaced by --before" in err


def test_before_must_be_a_task_id(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    for value in ("0", "-1", "x", str(2**63)):
        with pytest.raises(SystemExit) as exited:
            cli("list", "--before", value)
        assert exited.value.code == 2
    assert "not a task id" in capsys.readouterr().err
