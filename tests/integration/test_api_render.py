"""POST /api/v1/render and GET /api/v1/profiles against the running app (SQLite): the manifest a task
gets, before and after submitting, with the same token and the same 422s (`loc`) as submitting."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.api_server import ALICE, BOB, ApiServer, api_server, database_url

GPU = {
    "user_fields": ["image", "command", "tolerations"],
    "job": {"spec": {"template": {"spec": {"nodeSelector": {"pool": "gpu"}}}}},
}
INFO = {"image": "busybox", "command": ["true"], "profile": "gpu"}


@pytest.fixture
def server() -> Iterator[ApiServer]:
    with database_url("sqlite") as url, api_server(url, api={"reads": "token"}, profiles={"gpu": GPU}) as running:
        yield running


def test_render_previews_and_renders_a_stored_task(server: ApiServer) -> None:
    with server.client(ALICE) as alice:
        preview = alice.post("/api/v1/render", json={"name": "t1", "namespace": "demo", "info": INFO})
        assert preview.status_code == 200, preview.text
        job = preview.json()
        assert job["metadata"]["name"] == "t1" and job["metadata"]["namespace"] == "demo"
        assert job["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "gpu"}
        task = alice.post("/api/v1/tasks", json={"name": "t1", "namespace": "demo", "info": INFO}).json()
        stored = alice.post("/api/v1/render", json={"task_id": task["id"]}).json()
        assert stored["metadata"]["labels"]["nightwatch.io/task-id"] == str(task["id"])
        assert stored["spec"] == job["spec"] | {"template": stored["spec"]["template"]}
    with server.client(BOB) as bob:  # another user's task: not readable with reads by token
        assert bob.post("/api/v1/render", json={"task_id": task["id"]}).status_code == 404


def test_render_refuses_like_submit_with_loc(server: ApiServer) -> None:
    with server.client(ALICE) as alice:
        response = alice.post("/api/v1/render", json={"info": {**INFO, "nodeSelector": {"pool": "cpu"}}})
        assert response.status_code == 422
        assert response.json()["detail"] == [
            {
                "loc": ["body", "info", "nodeSelector"],
                "msg": "nodeSelector is set by profile gpu and cannot be overridden",
                "type": "value_error",
            }
        ]
        submitted = alice.post("/api/v1/tasks", json={"name": "t2", "info": {**INFO, "nodeSelector": {}}})
        assert submitted.status_code == 422
        assert submitted.json()["detail"][0]["loc"] == ["body", "info", "nodeSelector"]
        unknown = alice.post("/api/v1/render", json={"info": {**INFO, "profile": "tpu"}})
        assert unknown.json()["detail"][0]["loc"] == ["body", "info", "profile"]


def test_render_needs_a_writers_token(server: ApiServer) -> None:
    assert httpx.post(f"{server.url}/api/v1/render", json={"info": INFO}).status_code == 401


def test_profiles_are_listed_for_the_form(server: ApiServer) -> None:
    with server.client(ALICE) as alice:
        names = {p["name"]: p for p in alice.get("/api/v1/profiles").json()}
    assert set(names) == {"default", "gpu", "restricted"}
    assert names["gpu"]["user_fields"] == ["image", "command", "tolerations"] and names["default"]["default"]
