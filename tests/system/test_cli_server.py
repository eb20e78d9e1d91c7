"""The CLI's `--server` mode against a real `nightwatch run`, and the loopback-only start without tokens."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from tests.support.nwprocess import Nightwatch

TOKEN = "cli-test-token-0123456789abcdef"


@pytest.fixture
def nw_env() -> dict[str, str]:
    return {"NIGHTWATCH_API__TOKENS": json.dumps([{"token": TOKEN, "user_id": 5}])}


def test_submit_list_show_cancel_through_the_api(nw: Nightwatch) -> None:
    nw.start()
    remote = ("--server", f"http://127.0.0.1:{nw.port}")
    nw.env["NIGHTWATCH_TOKEN"] = TOKEN  # the token from the environment, as the docs recommend

    submitted = nw.cli("submit", *remote, "--name", "via-api", "--image", "busybox", "--", "sh", "-c", "echo hi")
    task_id = int(submitted.stdout.split()[2])
    done = nw.wait_status(task_id, {"Succeeded"})
    assert done["user_id"] == 5 and "hi" in done["message"]
    assert json.loads(nw.cli("show", *remote, str(task_id)).stdout) == done  # the same JSON as from the database

    long_id = int(nw.cli("submit", *remote, "--name", "long", "--image", "b", "--", "sleep", "300").stdout.split()[2])
    nw.wait_status(long_id, {"Running"})
    listed = [json.loads(line) for line in nw.cli("list", *remote, "--json").stdout.splitlines()]
    assert [t["name"] for t in listed] == ["long", "via-api"]  # newest first
    running = nw.cli("list", *remote, "--json", "--status", "Running").stdout.splitlines()
    assert [json.loads(line)["name"] for line in running] == ["long"]
    assert "requested" in nw.cli("cancel", *remote, str(long_id)).stdout
    assert nw.wait_status(long_id, {"Cancelled"})["status"] == "Cancelled"

    bad = nw.cli("submit", *remote, "--name", "Bad_Name", "--info", '{"command": "x"}', check=False)
    assert bad.returncode == 2
    assert "name: task name 'Bad_Name' is not a DNS-1123 label" in bad.stderr
    assert "info.image: invalid info: image: Field required" in bad.stderr
    assert nw.cli("show", *remote, "424242", check=False).returncode == 3
    ended = nw.cli("cancel", *remote, str(task_id), check=False)
    assert ended.returncode == 2 and "already Succeeded" in ended.stderr
    nw.env["NIGHTWATCH_TOKEN"] = "a-wrong-token-0123456789"
    refused = nw.cli("cancel", *remote, str(long_id), check=False)
    assert refused.returncode == 2 and "401" in refused.stderr
    unreachable = nw.cli("list", "--server", "http://127.0.0.1:1", check=False)
    assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr
    assert nw.stop() == 0


def test_without_tokens_the_server_listens_on_loopback_only_and_says_so(tmp_path: Path) -> None:
    nw = Nightwatch(tmp_path, env={"NIGHTWATCH_HTTP__HOST": "0.0.0.0"})
    try:
        nw.start()
        log = nw.log.read_text()
        assert "WARNING" in log and "no API tokens configured" in log and "listening on 127.0.0.1 only" in log
        assert listening_addresses(nw.port) == {"127.0.0.1"}
        assert nw.http("/api/v1/whoami")[1] and json.loads(nw.http("/api/v1/whoami")[1])["can_write"] is False
        refused = nw.cli(
            "submit", "--server", f"http://127.0.0.1:{nw.port}", "--name", "x", "--image", "b", check=False
        )
        assert refused.returncode == 2 and "401" in refused.stderr
        assert nw.stop() == 0
    finally:
        nw.kill()


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a listening TCP socket on `port` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if int(hex_port, 16) == port and state == "0A":  # 0A: LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found
