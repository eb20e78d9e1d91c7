"""The queue routes and the `waiting` field over HTTP, on SQLite and MariaDB: admin-only pause,
resume and list, a pause seen by dispatch through the database, priority at submit, and why a task
waits (paused, at its limit, its position, a run_at) in the detail view and the cheap list field."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from nightwatch.adapters.memory import FixedFence, MemoryJobRunner
from nightwatch.app.usecases.dispatch import DispatchTasks
from nightwatch.domain.model import TaskId
from tests.support.api_server import ADMIN, ALICE, ApiServer, api_server, bearer, database_url

INFO = {"image": "alpine"}
QUEUES = {"team-a": {"namespaces": ["default"], "max_in_flight": 1}, "spare": {"users": [99]}}


@pytest.fixture(params=["sqlite", "mariadb"])
def server(request: pytest.FixtureRequest) -> Iterator[ApiServer]:
    with database_url(request.param) as url, api_server(url, api={"reads": "open"}, extra={"queues": QUEUES}) as s:
        yield s


def client(server: ApiServer, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=bearer(token), timeout=10)


def dispatch(server: ApiServer) -> int:
    c = server.container
    repo = c.repository()
    tick = DispatchTasks(
        repo,
        MemoryJobRunner(),
        c.clock(),
        FixedFence(repo.advance_epoch()),
        policy=c.submission_policy(),
        queues=c.queues(),
        queue_states=c.queue_states(),
    )
    return tick().launched


def test_only_an_admin_lists_pauses_and_resumes_and_an_unknown_queue_is_404(server: ApiServer) -> None:
    with client(server, ALICE) as alice, client(server, ADMIN) as admin:
        assert alice.get("/api/v1/queues").status_code == 403
        assert alice.post("/api/v1/queues/team-a/pause").status_code == 403
        listed = admin.get("/api/v1/queues").json()
        assert [q["name"] for q in listed] == ["team-a", "spare"]
        assert listed[0] == {
            "name": "team-a",
            "paused": False,
            "in_flight": 0,
            "max_in_flight": 1,
            "max_starts_per_minute": None,
            "fair_share": False,
        }
        assert admin.post("/api/v1/queues/team-a/pause").json()["paused"] is True
        missing = admin.post("/api/v1/queues/nope/pause")
        assert missing.status_code == 404 and "nope" in missing.json()["detail"]
        assert admin.post("/api/v1/queues/team-a/resume").json()["paused"] is False


def test_waiting_says_paused_then_limit_then_position_and_dispatch_honours_the_pause(server: ApiServer) -> None:
    with client(server, ALICE) as alice, client(server, ADMIN) as admin:
        ids = [alice.post("/api/v1/tasks", json={"name": f"t{i}", "info": INFO}).json()["id"] for i in range(3)]
        high = alice.post("/api/v1/tasks", json={"name": "high", "info": INFO, "priority": 50}).json()
        assert high["priority"] == 50
        bad = alice.post("/api/v1/tasks", json={"name": "bad", "info": INFO, "priority": 5000})
        assert bad.status_code == 422 and "priority" in bad.text
        assert alice.get(f"/api/v1/tasks/{ids[2]}").json()["waiting"] == "position 4 in queue team-a"
        admin.post("/api/v1/queues/team-a/pause")
        assert alice.get(f"/api/v1/tasks/{ids[0]}").json()["waiting"] == "paused: queue team-a"
        assert dispatch(server) == 0  # paused in the database: dispatch launches nothing
        admin.post("/api/v1/queues/team-a/resume")
        assert dispatch(server) == 1
        assert server.repository.get(TaskId(high["id"])).queue == "team-a"  # priority first
        assert alice.get(f"/api/v1/tasks/{ids[0]}").json()["waiting"] == "queue team-a at its limit 1/1"
        assert alice.get(f"/api/v1/tasks/{high['id']}").json()["waiting"] is None  # launched
        assert admin.get("/api/v1/queues").json()[0]["in_flight"] == 1


def test_a_listed_task_says_it_waits_for_its_run_at(server: ApiServer) -> None:
    repo = server.repository
    later = server.container.clock().now() + timedelta(hours=2)
    from nightwatch.domain.ports import NewTask

    task = repo.add(NewTask("later", "default", '{"image":"alpine"}', 1, run_at=later), later - timedelta(hours=2))
    with client(server, ALICE) as alice:
        (item,) = [t for t in alice.get("/api/v1/tasks").json()["items"] if t["id"] == task.id]
        assert item["waiting"] == f"run_at {later.isoformat()}"
        assert alice.get(f"/api/v1/tasks/{task.id}").json()["waiting"] == f"run_at {later.isoformat()}"
