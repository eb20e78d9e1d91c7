"""`nightwatch schedule ...` and `submit --at` in both CLI modes (the database directly, and
`--server`): the same lines and exit codes; bad specs, zones and times exit 2 naming the field."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from nightwatch.app.cli import main
from tests.integration.test_cli_gateway import Cli, Outcome, _steady, cli_in

INFO = '{"image":"busybox","command":["true"]}'


def run(cli: Cli, *args: str) -> Outcome:
    """`nightwatch <args>` with the mode's --server options after the (sub)command they belong to."""
    cli.capsys.readouterr()
    split = 2 if args[0] == "schedule" else 1
    code = main([*args[:split], *cli.remote, *args[split:]])
    out, err = cli.capsys.readouterr()
    # A triggered task is named after the second it was made.
    return code, re.sub(r"nightly-[0-9a-z]+", "nightly-<slot>", _steady(out)), err


@pytest.fixture(params=["local", "server"])
def cli(
    request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Cli]:
    for name in ("NIGHTWATCH_SERVER", "NIGHTWATCH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with cli_in(request.param, tmp_path / request.param, capsys, monkeypatch) as running:
        yield running


def scenario(cli: Cli) -> list[Outcome]:
    create = ["schedule", "create", "--name", "nightly", "--cron", "30 2 * * *", "--timezone", "Europe/Berlin"]
    return [
        run(cli, *create, "--info", INFO, "--concurrency", "Forbid", "--keep", "3"),
        run(cli, *create, "--info", INFO),
        run(cli, "schedule", "create", "--name", "bad", "--cron", "61 * * *", "--timezone", "Mars/X", "--info", INFO),
        run(cli, "schedule", "list"),
        run(cli, "schedule", "next", "nightly", "--from", "2026-10-24T00:00:00Z", "--count", "3"),
        run(cli, "schedule", "next", "nightly", "--from", "2026-03-28T00:00:00Z", "--count", "2", "--json"),
        run(cli, "schedule", "pause", "nightly"),
        run(cli, "schedule", "trigger", "nightly"),
        run(cli, "schedule", "resume", "nightly"),
        run(cli, "schedule", "delete", "nightly"),
        run(cli, "schedule", "show", "nightly"),
        run(cli, "submit", "--name", "later", "--image", "busybox", "--at", "2030-01-01T10:00:00+01:00"),
        run(cli, "submit", "--name", "naive", "--image", "busybox", "--at", "2030-01-01T10:00:00"),
        run(cli, "submit", "--name", "garbage", "--image", "busybox", "--at", "tomorrow"),
        run(cli, "show", "2"),
    ]


def test_schedule_commands_print_the_same_in_both_modes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    outcomes = {}
    for mode in ("local", "server"):
        with cli_in(mode, tmp_path / mode, capsys, monkeypatch) as running:
            outcomes[mode] = scenario(running)
    assert outcomes["local"] == outcomes["server"]


def test_schedule_scenario(cli: Cli) -> None:
    out = scenario(cli)
    created, duplicate, bad, listed, upcoming, as_json = out[:6]
    assert created[0] == 0 and "created schedule 1 (default/nightly)" in created[1]
    assert duplicate[0] == 1 and "already exists" in duplicate[2]
    assert bad[0] == 2
    assert "nightwatch: cron: invalid cron spec" in bad[2] and "nightwatch: timezone: unknown time zone" in bad[2]
    assert "nightly default 30 2 * * * Europe/Berlin active" in listed[1]
    assert upcoming[0] == 0 and len(upcoming[1].splitlines()) == 3 and "Europe/Berlin" in upcoming[1]
    assert json.loads(as_json[1]) == ["<when>", "<when>"]
    paused, triggered, resumed, deleted, missing = out[6:11]
    assert paused[0] == triggered[0] == resumed[0] == deleted[0] == 0
    assert "triggered task 1 (default/nightly-" in triggered[1]
    assert missing[0] == 3
    later, naive, garbage, shown = out[11:]
    assert later[0] == 0 and "not before" in later[1]
    assert naive[0] == 2 and "nightwatch: run_at:" in naive[2] and "no UTC offset" in naive[2]
    assert garbage[0] == 2 and "nightwatch: run_at:" in garbage[2]
    assert shown[0] == 0 and '"run_at": "<when>"' in shown[1]


def test_next_with_a_spec_alone_needs_no_schedule_and_prints_utc_instants(cli: Cli) -> None:
    cli.capsys.readouterr()
    spec = ["--cron", "0,30 1-3 * * *", "--timezone", "America/New_York"]
    code = main(["schedule", "next", *spec, "--from", "2026-11-01T04:00:00Z", "--count", "4", "--json"])
    out, err = cli.capsys.readouterr()
    assert code == 0, err
    assert json.loads(out) == [
        "2026-11-01T05:00:00Z",
        "2026-11-01T05:30:00Z",
        "2026-11-01T07:00:00Z",
        "2026-11-01T07:30:00Z",
    ]
    assert main(["schedule", "next", "--cron", "* * *"]) == 2
    assert "nightwatch: cron:" in cli.capsys.readouterr().err
