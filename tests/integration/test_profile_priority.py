"""A profile's `priority` through the entrypoints, on a SQLite file: `submit` without `--priority`, a
REST body without `priority` (or null) and the CLI's API client all leave it to the profile; a given
priority, 0 included, wins."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from nightwatch.app.cli import main
from nightwatch.app.client import ApiClient
from tests.support.api_server import ALICE, ApiServer, api_server, bearer, database_url
from tests.support.sql_backends import sqlite_url

PROFILES = {"urgent": {"priority": 50}}
INFO = {"image": "alpine", "profile": "urgent"}


def test_cli_submit_without_priority_takes_the_profiles(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with sqlite_url() as url:
        monkeypatch.setenv("NIGHTWATCH_DATABASE__URL", url)
        monkeypatch.setenv("NIGHTWATCH_PROFILES", json.dumps(PROFILES))
        info = json.dumps(INFO)
        assert main(["submit", "--name", "a", "--info", info]) == 0
        assert main(["submit", "--name", "b", "--info", info, "--priority", "0"]) == 0
        capsys.readouterr()
        shown = []
        for task_id in ("1", "2"):
            assert main(["show", task_id]) == 0
            shown.append(json.loads(capsys.readouterr().out)["priority"])
        assert shown == [50, 0]


@pytest.fixture
def server() -> Iterator[ApiServer]:
    with database_url("sqlite") as url, api_server(url, profiles=PROFILES) as s:
        yield s


def test_rest_and_the_api_client_leave_the_priority_to_the_profile(server: ApiServer) -> None:
    with httpx.Client(base_url=server.url, headers=bearer(ALICE), timeout=10) as alice:
        absent = alice.post("/api/v1/tasks", json={"name": "a", "info": INFO})
        null = alice.post("/api/v1/tasks", json={"name": "b", "info": INFO, "priority": None})
        zero = alice.post("/api/v1/tasks", json={"name": "c", "info": INFO, "priority": 0})
        plain = alice.post("/api/v1/tasks", json={"name": "d", "info": {"image": "alpine"}})
    assert [r.json()["priority"] for r in (absent, null, zero, plain)] == [50, 50, 0, 0]
    client = ApiClient(server.url, ALICE)
    try:
        assert client.submit("e", "default", INFO).priority == 50
        assert client.submit("f", "default", INFO, priority=7).priority == 7
    finally:
        client.close()
