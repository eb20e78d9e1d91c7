"""/api/v1/schedules over real HTTP on SQLite and MariaDB: create (every bad field a 422 with its
loc), list with last/next fire, get with the newest `keep` tasks, pause/resume/trigger/delete, the
upcoming times, the tasks' access rules; and run_at on POST /tasks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.api_server import ADMIN, ALICE, BOB, ApiServer, api_server, database_url

INFO = {"image": "busybox", "command": ["true"]}


@pytest.fixture(params=["sqlite", "mariadb"])
def closed(request: pytest.FixtureRequest) -> Iterator[ApiServer]:
    with database_url(request.param) as url, api_server(url, api={"reads": "token"}) as running:
        yield running


def create(client: httpx.Client, name: str, **body: Any) -> dict[str, Any]:
    response = client.post("/api/v1/schedules", json={"name": name, "cron": "@hourly", "info": INFO, **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


def locs(response: httpx.Response) -> set[str]:
    assert response.status_code == 422, response.text
    return {".".join(str(p) for p in e["loc"][1:]) for e in response.json()["detail"]}


def test_create_list_get_pause_resume_trigger_delete(closed: ApiServer) -> None:
    with closed.client(ALICE) as alice:
        made = create(alice, "nightly", cron="30 2 * * *", timezone="Europe/Berlin", concurrency="Forbid", keep=2)
        assert made["next_fire_at"] is not None and made["suspended"] is False and made["last_task"] is None
        listed = alice.get("/api/v1/schedules").json()
        assert [s["name"] for s in listed] == ["nightly"]
        path = f"/api/v1/schedules/{made['id']}"
        assert alice.post(path + "/pause").json()["next_fire_at"] is None
        assert alice.post(path + "/resume").json()["suspended"] is False
        task = alice.post(path + "/trigger")
        assert task.status_code == 201 and task.json()["name"].startswith("nightly-")
        shown = alice.get(path).json()
        assert shown["last_task"]["id"] == task.json()["id"] and len(shown["tasks"]) == 1
        upcoming = alice.get(path + "/next", params={"from": "2026-03-28T00:00:00Z", "count": 2}).json()
        assert upcoming == {"timezone": "Europe/Berlin", "times": ["2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z"]}
        assert (
            alice.post("/api/v1/schedules", json={"name": "nightly", "cron": "@hourly", "info": INFO}).status_code
            == 409
        )
        assert alice.delete(path).status_code == 204
        assert alice.get(path).status_code == 404
        assert alice.get(f"/api/v1/tasks/{task.json()['id']}").status_code == 200  # its tasks stay


def test_every_bad_field_is_a_422_naming_it(closed: ApiServer) -> None:
    with closed.client(ALICE) as alice:
        bad = alice.post(
            "/api/v1/schedules",
            json={
                "name": "Not_A_Label",
                "cron": "61 * * * *",
                "timezone": "Mars/Base",
                "info": {"image": ""},
                "concurrency": "Sometimes",
                "catch_up": 0,
                "starting_deadline_seconds": 0,
            },
        )
        assert {
            "name",
            "cron",
            "timezone",
            "info.image",
            "concurrency",
            "catch_up",
            "starting_deadline_seconds",
        } <= locs(bad)
        assert alice.get("/api/v1/schedules").json() == []  # nothing stored


def test_a_user_sees_and_changes_only_its_own_schedules(closed: ApiServer) -> None:
    with closed.client(ALICE) as alice, closed.client(BOB) as bob, closed.client(ADMIN) as admin:
        mine = create(alice, "alices")
        create(bob, "bobs")
        assert [s["name"] for s in alice.get("/api/v1/schedules").json()] == ["alices"]
        assert sorted(s["name"] for s in admin.get("/api/v1/schedules").json()) == ["alices", "bobs"]
        path = f"/api/v1/schedules/{mine['id']}"
        assert bob.get(path).status_code == 404
        assert bob.post(path + "/pause").status_code == 404
        assert bob.delete(path).status_code == 404
        assert admin.post(path + "/pause").status_code == 200
    with closed.client() as anonymous:
        assert anonymous.get("/api/v1/schedules").status_code == 401


def test_run_at_on_submit_is_stored_and_shown_and_a_naive_or_bad_time_is_a_422(closed: ApiServer) -> None:
    with closed.client(ALICE) as alice:
        body = {"name": "later", "info": INFO, "run_at": "2030-01-01T10:00:00+01:00"}
        made = alice.post("/api/v1/tasks", json=body)
        assert made.status_code == 201, made.text
        assert alice.get(f"/api/v1/tasks/{made.json()['id']}").json()["run_at"] == "2030-01-01T09:00:00Z"
        for bad in ("2030-01-01T10:00:00", "soon"):
            assert locs(alice.post("/api/v1/tasks", json={**body, "name": "x", "run_at": bad})) == {"run_at"}
