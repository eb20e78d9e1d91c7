"""`nightwatch render` in both CLI modes (the database directly, and `--server` through POST
/api/v1/render): the same manifests, the same refusals and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_cli_gateway import Cli, Outcome, cli_in


@pytest.fixture(autouse=True)
def _no_server_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NIGHTWATCH_SERVER", "NIGHTWATCH_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def scenario(cli: Cli) -> list[Outcome]:
    return [
        cli("submit", "--name", "first", "--info", '{"image":"busybox","command":["true"],"profile":"restricted"}'),
        cli("render", "1", "--json"),
        cli("render", "1"),
        cli("render", "--namespace", "default", "--info", '{"image":"busybox","profile":"restricted"}', "--json"),
        cli("render", "--info", '{"image":"busybox","profile":"restricted","securityContext":{"runAsUser":0}}'),
        cli("render", "--info", '{"image":"busybox","profile":"gpu"}'),
        cli("render", "424242"),
        cli("render"),
    ]


def test_render_prints_the_same_in_both_modes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    results = {}
    for mode in ("local", "server"):
        with cli_in(mode, tmp_path / mode, capsys, monkeypatch) as cli:
            results[mode] = scenario(cli)
    assert results["local"] == results["server"]
    codes = [code for code, _, _ in results["local"]]
    assert codes == [0, 0, 0, 0, 2, 2, 3, 2]
    job = json.loads(results["local"][1][1])
    assert job["metadata"]["labels"]["nightwatch.io/task-id"] == "1"
    assert job["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert results["local"][4][2] == (
        "nightwatch: info.securityContext: securityContext is set by profile restricted and cannot be overridden\n"
    )
    assert "profile gpu is not configured" in results["local"][5][2]
