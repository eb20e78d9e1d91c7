"""The REST API against the running app (uvicorn on a free port) over real SQLite and MariaDB.

Every endpoint, every validation error, authentication and ownership, cursor pages that stay
stable while rows are inserted, the request guards (413, 415) and the probes on the same port.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

import httpx
import pytest

from nightwatch.adapters.memory import MemoryTaskRepository
from nightwatch.adapters.sql import create_engine_for
from nightwatch.app.api.summary import SUMMARY_TTL_SECONDS
from nightwatch.domain.errors import RetryableError
from nightwatch.domain.jobspec import MAX_INFO_BYTES
from nightwatch.domain.model import Task, TaskId, TaskStatus
from nightwatch.domain.ports import NewTask, TaskFilter, TaskPage
from tests.support.api_server import ADMIN, ALICE, BOB, ApiServer, api_server, bearer, database_url
from tests.support.waiting import wait_until

INFO = {"image": "busybox", "command": ["sh", "-c"], "args": ["echo hi"]}


@pytest.fixture(params=["sqlite", "mariadb"])
def database(request: pytest.FixtureRequest) -> Iterator[str]:
    with database_url(request.param) as url:
        yield url


@pytest.fixture
def server(database: str) -> Iterator[ApiServer]:
    """Reads open (chosen: with tokens the default is token); alice (1), bob (2) and an admin (100)
    have tokens."""
    with api_server(database, api={"reads": "open"}) as running:
        yield running


@pytest.fixture
def closed(database: str) -> Iterator[ApiServer]:
    """Reads need a token, and a non-admin token reads only its own tasks."""
    with api_server(database, api={"reads": "token"}) as running:
        yield running


def submit(client: httpx.Client, name: str, namespace: str = "default", **body: Any) -> dict[str, Any]:
    response = client.post("/api/v1/tasks", json={"name": name, "namespace": namespace, "info": INFO, **body})
    assert response.status_code == 201, response.text
    return dict(response.json())


def errors_of(response: httpx.Response) -> dict[tuple[Any, ...], str]:
    assert response.status_code == 422, response.text
    return {tuple(e["loc"]): e["msg"] for e in response.json()["detail"]}


def finish(server: ApiServer, task_id: int, status: TaskStatus) -> None:
    """Move a task to a terminal status as the leader would (the API itself never does)."""
    repo = server.repository
    task = repo.get(TaskId(task_id))
    now = task.created_at
    assert now is not None
    change = task.cancel(now) if status is TaskStatus.CANCELLED else task.fail("boom", now)
    repo.apply([change], epoch=repo.advance_epoch())


# -- submit -------------------------------------------------------------------------------------


def test_submit_returns_the_stored_task_with_its_location(server: ApiServer) -> None:
    with server.client(ALICE) as alice:
        response = alice.post("/api/v1/tasks", json={"name": "hello", "info": INFO})
        assert response.status_code == 201
        task = response.json()
        assert response.headers["location"] == f"/api/v1/tasks/{task['id']}"
        assert set(task) >= {
            "id", "name", "namespace", "user_id", "status", "message", "job_name", "info",
            "cancel_requested", "created_at", "started_at", "finished_at",
        }  # fmt: skip
        assert (task["name"], task["namespace"], task["user_id"], task["status"]) == ("hello", "default", 1, "Normal")
        assert json.loads(task["info"]) == INFO and task["job_name"] is None and task["cancel_requested"] is False
        assert task["created_at"].endswith("Z") and task["started_at"] is None and task["finished_at"] is None
        assert alice.get(response.headers["location"]).json() == task
    stored = server.repository.get(TaskId(task["id"]))
    assert (stored.user_id, json.loads(stored.info)) == (1, INFO)


def test_every_invalid_field_is_named_with_the_domains_message(server: ApiServer) -> None:
    with server.client(ALICE) as alice:
        bad = alice.post(
            "/api/v1/tasks", json={"name": "Bad_Name", "namespace": "elsewhere", "info": {"command": "ls"}}
        )
        errors = errors_of(bad)
        assert "is not a DNS-1123 label" in errors[("body", "name")]
        assert "namespace 'elsewhere' is not allowed" in errors[("body", "namespace")]
        assert errors[("body", "info", "image")] == "invalid info: image: Field required"
        assert "must be a list of strings" in errors[("body", "info", "command")]
        cases: list[tuple[dict[str, Any], tuple[Any, ...], str]] = [
            ({"name": "", "info": INFO}, ("body", "name"), "must not be empty"),
            ({"name": "x" * 64, "info": INFO}, ("body", "name"), "the limit is 63"),
            ({"name": "ok", "namespace": "Demo", "info": INFO}, ("body", "namespace"), "not a DNS-1123 label"),
            ({"name": "ok", "info": {"image": "x", "backoffLimit": "3"}}, ("body", "info", "backoffLimit"), "integer"),
            ({"name": "ok", "info": {"image": "x", "env": [{"value": "v"}]}}, ("body", "info", "env", 0, "name"), ""),
            ({"name": "ok", "info": ["busybox"]}, ("body", "info"), "dictionary"),
            ({"name": "ok"}, ("body", "info"), "Field required"),
            ({"info": INFO}, ("body", "name"), "Field required"),
            ({"name": "ok", "info": INFO, "user_id": 2}, ("body", "user_id"), "Extra inputs are not permitted"),
            ({"name": 7, "info": INFO}, ("body", "name"), "valid string"),
        ]
        for body, loc, message in cases:
            errors = errors_of(alice.post("/api/v1/tasks", json=body))
            assert loc in errors, (body, errors)
            assert message in errors[loc], (body, errors)
        big = {"image": "busybox", "args": ["x" * MAX_INFO_BYTES]}
        assert (
            "the limit is 262144"
            in errors_of(alice.post("/api/v1/tasks", json={"name": "big", "info": big}))[("body", "info")]
        )
        nan = alice.post("/api/v1/tasks", content=b'{"name": "nan", "info": {"image": "x", "x": NaN}}', headers=_JSON)
        assert "not representable as JSON" in errors_of(nan)[("body", "info")]
        malformed = alice.post("/api/v1/tasks", content=b'{"name": ', headers=_JSON)
        assert malformed.status_code == 422 and malformed.json()["detail"][0]["type"] == "json_invalid"
        assert alice.get("/api/v1/tasks").json()["items"] == []  # nothing invalid was stored


_JSON = {"Content-Type": "application/json"}


def test_hostile_bodies_get_4xx_never_5xx(server: ApiServer) -> None:
    bodies = {
        # Lone surrogates are valid JSON escapes that UTF-8 cannot encode; echoed back, they made a 500.
        b'{"name": "a", "info": {"image": "x"}, "\\ud800": 1}': 422,
        b'{"name": 5, "info": {"image": "x"}, "z": "\\udc00"}': 422,
        b'{"name": "\\ud800", "info": {"image": "x"}}': 422,
        b'{"name": "a", "info": {"image": "\\ud800"}}': 422,
        b'{"name": "deep", "info": {"image": "x", "deep": ' + b"[" * 5000 + b"]" * 5000 + b"}}": 400,
        b"\xff\xfe not even UTF-8": 400,
        b"[]": 422,
        b"null": 422,
    }
    with server.client(ALICE) as alice:
        for body, expected in bodies.items():
            response = alice.post("/api/v1/tasks", content=body, headers=_JSON)
            assert response.status_code == expected, (body[:60], response.text)
            assert "detail" in response.json()
        odd = alice.post(
            "/api/v1/tasks", content=b'{"name": "odd", "info": {"image": "x", "k\\ud800": "\\u00e9"}}', headers=_JSON
        )
        assert odd.status_code == 201  # unknown keys are kept (escaped), never reach a Job
        assert json.loads(alice.get(f"/api/v1/tasks/{odd.json()['id']}").json()["info"])["k\ud800"] == "\u00e9"


def test_a_duplicate_name_in_a_namespace_is_409_and_other_namespaces_are_fine(server: ApiServer) -> None:
    with server.client(ALICE) as alice, server.client(BOB) as bob:
        submit(alice, "twin")
        duplicate = bob.post("/api/v1/tasks", json={"name": "twin", "info": INFO})
        assert duplicate.status_code == 409 and "already exists" in duplicate.json()["detail"]
        submit(bob, "twin", namespace="demo")


def test_bodies_over_the_limit_are_413_however_they_are_framed(database: str) -> None:
    with api_server(database, api={"max_body_bytes": 4096}) as small, small.client(ALICE) as alice:
        body = json.dumps({"name": "big", "info": {"image": "x", "args": ["y" * 5000]}}).encode()
        assert alice.post("/api/v1/tasks", content=body, headers=_JSON).status_code == 413
        chunked = alice.post("/api/v1/tasks", content=iter([body[:3000], body[3000:]]), headers=_JSON)
        assert chunked.status_code == 413 and "limit of 4096 bytes" in chunked.json()["detail"]
        assert alice.post("/api/v1/tasks", json={"name": "small", "info": INFO}).status_code == 201


def test_form_encodings_are_refused_on_writes(server: ApiServer) -> None:
    with server.client(ALICE) as alice:
        form = alice.post("/api/v1/tasks", data={"name": "f", "info": "{}"})
        assert form.status_code == 415
        multipart = alice.post("/api/v1/tasks", files={"info": ("info.json", b"{}")})
        assert multipart.status_code == 415
        plain = alice.post("/api/v1/tasks", content=json.dumps({"name": "p", "info": INFO}).encode())
        assert plain.status_code == 415  # no Content-Type at all
        text = alice.post("/api/v1/tasks", content=b"{}", headers={"Content-Type": "text/plain"})
        assert text.status_code == 415
        task = submit(alice, "formless")
        cancel_form = alice.post(f"/api/v1/tasks/{task['id']}/cancel", data={"x": "1"})
        assert cancel_form.status_code == 415
        assert alice.post(f"/api/v1/tasks/{task['id']}/cancel").status_code == 202  # no body: fine
        assert alice.get("/api/v1/tasks").json()["items"][0]["name"] == "formless"


# -- authentication -----------------------------------------------------------------------------


def test_writes_need_a_valid_bearer_token(server: ApiServer) -> None:
    with server.client(ALICE) as alice:
        task = submit(alice, "mine")
    with server.client() as anonymous:
        for response in (
            anonymous.post("/api/v1/tasks", json={"name": "x", "info": INFO}),
            anonymous.post(f"/api/v1/tasks/{task['id']}/cancel"),
        ):
            assert response.status_code == 401
            assert response.headers["www-authenticate"].startswith("Bearer")
        for headers in (bearer("not-a-token-at-all-xxxx"), {"Authorization": f"Basic {ALICE}"}, bearer(ALICE[:-1])):
            wrong = anonymous.post("/api/v1/tasks", json={"name": "x", "info": INFO}, headers=headers)
            assert wrong.status_code == 401 and 'error="invalid_token"' in wrong.headers["www-authenticate"]
            assert anonymous.get("/api/v1/tasks", headers=headers).status_code == 401  # even where reads are open
            assert anonymous.get("/api/v1/whoami", headers=headers).status_code == 401
        assert anonymous.get("/api/v1/tasks").status_code == 200
        assert anonymous.get("/api/v1/whoami").json() == {
            "user_id": None,
            "admin": False,
            "can_write": False,
            "reads_open": True,
        }
    with server.client(ADMIN) as admin:
        assert admin.get("/api/v1/whoami").json() == {
            "user_id": 100,
            "admin": True,
            "can_write": True,
            "reads_open": True,
        }
    assert len(server.repository.list_newest(TaskFilter()).tasks) == 1


def test_when_reads_need_a_token_users_see_only_their_own_tasks(closed: ApiServer) -> None:
    with closed.client(ALICE) as alice, closed.client(BOB) as bob, closed.client(ADMIN) as admin:
        mine = submit(alice, "alice-1")
        theirs = submit(bob, "bob-1")
        with closed.client() as anonymous:
            for path in ("/api/v1/tasks", f"/api/v1/tasks/{mine['id']}", "/api/v1/summary"):
                refused = anonymous.get(path)
                assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
            assert anonymous.get("/api/v1/whoami").json()["reads_open"] is False
        assert [t["name"] for t in alice.get("/api/v1/tasks").json()["items"]] == ["alice-1"]
        assert alice.get("/api/v1/tasks", params={"user_id": 2}).json() == {"items": [], "next_cursor": None}
        assert alice.get(f"/api/v1/tasks/{theirs['id']}").status_code == 404  # not 403: ids reveal nothing
        refused = alice.post(f"/api/v1/tasks/{theirs['id']}/cancel")
        assert refused.status_code == 404 and refused.json() == {"detail": f"no task with id {theirs['id']}"}
        assert alice.get("/api/v1/summary").json()["total"] == 1
        assert [t["name"] for t in admin.get("/api/v1/tasks").json()["items"]] == ["bob-1", "alice-1"]
        assert [t["name"] for t in admin.get("/api/v1/tasks", params={"user_id": 2}).json()["items"]] == ["bob-1"]
        assert admin.get("/api/v1/summary").json()["total"] == 2
        assert admin.post(f"/api/v1/tasks/{theirs['id']}/cancel").status_code == 202
    assert closed.repository.get(TaskId(theirs["id"])).cancel_requested


def test_without_tokens_nobody_can_write(database: str) -> None:
    with api_server(database, api={"tokens": []}) as server, server.client() as anonymous:
        assert anonymous.get("/api/v1/whoami").json()["can_write"] is False
        assert anonymous.post("/api/v1/tasks", json={"name": "x", "info": INFO}).status_code == 401
        assert anonymous.get("/api/v1/tasks").status_code == 200


# -- reading ------------------------------------------------------------------------------------


def test_get_one_task_and_404_for_unknown_ids(server: ApiServer) -> None:
    with server.client(ALICE) as alice:
        task = submit(alice, "one")
        assert alice.get(f"/api/v1/tasks/{task['id']}").json()["name"] == "one"
        missing = alice.get("/api/v1/tasks/987654")
        assert missing.status_code == 404 and missing.json() == {"detail": "no task with id 987654"}
        for bad in ("0", "-1", "abc", str(2**63)):
            assert alice.get(f"/api/v1/tasks/{bad}").status_code == 422, bad


def test_list_filters_by_status_namespace_and_user(server: ApiServer) -> None:
    with server.client(ALICE) as alice, server.client(BOB) as bob:
        a1 = submit(alice, "a1")
        a2 = submit(alice, "a2", namespace="demo")
        b1 = submit(bob, "b1")
        b2 = submit(bob, "b2")
    finish(server, a1["id"], TaskStatus.FAILED)
    finish(server, b2["id"], TaskStatus.CANCELLED)
    with server.client() as reader:

        def names(**params: Any) -> list[str]:
            response = reader.get("/api/v1/tasks", params=params)
            assert response.status_code == 200, response.text
            return [t["name"] for t in response.json()["items"]]

        assert names() == ["b2", "b1", "a2", "a1"]
        assert names(status="Normal") == ["b1", "a2"]
        assert names(status=["Failed", "Cancelled"]) == ["b2", "a1"]
        assert names(namespace="demo") == ["a2"]
        assert names(user_id=2) == ["b2", "b1"]
        assert names(user_id=1, status="Failed") == ["a1"]
        assert names(namespace="nowhere") == []
        for params in ({"status": "normal"}, {"limit": 0}, {"limit": 501}, {"user_id": -1}, {"cursor": "garbage"}):
            response = reader.get("/api/v1/tasks", params=params)
            assert response.status_code == 422, params
            assert response.json()["detail"][0]["loc"][0] == "query"
        assert b1["id"] > a2["id"]


def test_pages_are_stable_while_tasks_are_inserted(server: ApiServer) -> None:
    with server.client(ALICE) as alice:
        existing = [submit(alice, f"old-{i}")["id"] for i in range(23)]
    stop = threading.Event()
    inserted: list[int] = []

    def insert_while_paging() -> None:
        with server.client(BOB) as bob:
            i = 0
            while not stop.is_set() and i < 500:
                inserted.append(submit(bob, f"new-{i}")["id"])
                i += 1

    writer = threading.Thread(target=insert_while_paging)
    with server.client() as reader:
        first = reader.get("/api/v1/tasks", params={"limit": 5}).json()
        writer.start()
        seen = [t["id"] for t in first["items"]]
        cursor = first["next_cursor"]
        try:
            while cursor is not None:
                # Every page is read after more rows went in, whatever the relative speeds.
                before = len(inserted)
                wait_until(lambda before=before: len(inserted) > before, 30, interval=0.005, what="an insert")
                page = reader.get("/api/v1/tasks", params={"limit": 5, "cursor": cursor}).json()
                seen += [t["id"] for t in page["items"]]
                cursor = page["next_cursor"]
        finally:
            stop.set()
            writer.join(60)
    assert seen == sorted(existing, reverse=True)  # every old row once, in order, no new row
    assert len(inserted) >= 4 and min(inserted) > max(existing)


def test_summary_counts_every_status(server: ApiServer) -> None:
    with server.client(ALICE) as alice:
        ids = [submit(alice, f"s{i}")["id"] for i in range(3)]
    finish(server, ids[0], TaskStatus.FAILED)
    with server.client() as reader:
        summary = reader.get("/api/v1/summary").json()
    assert summary["counts"] == {s.value: 0 for s in TaskStatus} | {"Normal": 2, "Failed": 1}
    assert summary["total"] == 3


class CountingCounts(MemoryTaskRepository):
    def __init__(self) -> None:
        super().__init__()
        self.counts = 0

    def count_by_status(self, *, user_id: int | None = None) -> Mapping[str, int]:
        self.counts += 1
        return super().count_by_status(user_id=user_id)


def test_summary_counts_once_per_period_however_many_ask() -> None:
    repository = CountingCounts()
    with api_server("memory://", repository=repository) as server, server.client(ALICE) as alice:
        submit(alice, "counted")
        answers = [alice.get("/api/v1/summary").json()["total"] for _ in range(20)]
        assert answers == [1] * 20 and repository.counts == 1
        time.sleep(SUMMARY_TTL_SECONDS + 0.2)
        submit(alice, "counted-later")
        assert alice.get("/api/v1/summary").json()["total"] == 2 and repository.counts == 2


# -- cancel -------------------------------------------------------------------------------------


def test_cancel_own_task_then_409_once_it_has_ended(server: ApiServer) -> None:
    with server.client(ALICE) as alice:
        task = submit(alice, "to-cancel")
        response = alice.post(f"/api/v1/tasks/{task['id']}/cancel")
        assert response.status_code == 202
        assert response.json()["cancel_requested"] is True and response.json()["status"] == "Normal"
        assert alice.post(f"/api/v1/tasks/{task['id']}/cancel").status_code == 202  # asking twice is fine
        finish(server, task["id"], TaskStatus.CANCELLED)
        ended = alice.post(f"/api/v1/tasks/{task['id']}/cancel")
        assert ended.status_code == 409 and "already Cancelled" in ended.json()["detail"]
        assert alice.post("/api/v1/tasks/424242/cancel").status_code == 404


def test_cancelling_another_users_task_when_reads_are_open_is_403(server: ApiServer) -> None:
    with server.client(ALICE) as alice, server.client(BOB) as bob, server.client(ADMIN) as admin:
        theirs = submit(bob, "bobs")
        refused = alice.post(f"/api/v1/tasks/{theirs['id']}/cancel")
        assert refused.status_code == 403 and "another user" in refused.json()["detail"]
        assert not server.repository.get(TaskId(theirs["id"])).cancel_requested
        assert admin.post(f"/api/v1/tasks/{theirs['id']}/cancel").status_code == 202


class DatabaseDown(MemoryTaskRepository):
    """Every read and write fails the way the SQL adapter reports an outage (after its retries)."""

    def list_newest(self, where: TaskFilter, *, before_id: int | None = None, limit: int = 50) -> TaskPage:
        raise RetryableError("database unreachable")

    def add(self, task: NewTask, now: datetime) -> Task:
        raise RetryableError("database unreachable")


def test_a_database_outage_is_503_with_retry_after() -> None:
    with api_server("memory://", repository=DatabaseDown()) as server, server.client(ALICE) as alice:
        for response in (alice.get("/api/v1/tasks"), alice.post("/api/v1/tasks", json={"name": "x", "info": INFO})):
            assert response.status_code == 503 and response.headers["retry-after"] == "5"
            assert response.json() == {"detail": "database unavailable"}  # the log keeps the driver's message
        assert alice.get("/api/v1/whoami").status_code == 200


def test_a_row_nightwatch_cannot_read_is_409_with_the_reason(database: str) -> None:
    engine = create_engine_for(database)
    with api_server(database, api={"reads": "open"}) as server, server.client() as reader:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO task (name, namespace, info, status, user_id) VALUES ('by-hand', 'default', '{}', 'normal', 1)"
            )
            task_id = conn.exec_driver_sql("SELECT id FROM task WHERE name = 'by-hand'").scalar_one()
        engine.dispose()
        listed = reader.get("/api/v1/tasks").json()
        assert listed == {"items": [], "next_cursor": None}  # skipped, not a failed listing
        response = reader.get(f"/api/v1/tasks/{task_id}")
        assert (
            response.status_code == 409
            and "status 'normal' which nightwatch does not know" in response.json()["detail"]
        )


# -- the rest of the port -----------------------------------------------------------------------


def test_probes_metrics_and_schema_share_the_port(server: ApiServer) -> None:
    with server.client() as client:
        assert client.get("/healthz").text == "ok\n"
        ready = client.get("/readyz")  # ok or not, and nothing else: no role, no driver message
        assert (ready.status_code, ready.json()) in (
            (200, {"ready": True}),
            (503, {"ready": False, "detail": "not ready"}),
        )
        metrics = client.get("/metrics")
        assert metrics.status_code == 200 and "nightwatch_tick_duration_seconds" in metrics.text
        schema = client.get("/openapi.json").json()
        assert {"/api/v1/tasks", "/api/v1/tasks/{task_id}", "/api/v1/tasks/{task_id}/cancel"} <= set(schema["paths"])
        assert "/healthz" not in schema["paths"]
        headers = client.get("/api/v1/tasks").headers
        assert headers["x-content-type-options"] == "nosniff" and headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "set-cookie" not in headers
        page = client.get("/")  # the web page sets its own CSP: one policy, not two enforced together
        assert len(page.headers.get_list("content-security-policy")) == 1
        assert page.headers.get_list("x-content-type-options") == ["nosniff"]


# -- history (issue 18) -------------------------------------------------------------------------------


def test_events_are_the_tasks_timeline_and_read_like_the_task(closed: ApiServer) -> None:
    with closed.client(ALICE) as alice, closed.client(BOB) as bob, closed.client(ADMIN) as admin:
        mine = submit(alice, "alice-1")
        finish(closed, mine["id"], TaskStatus.FAILED)
        events = alice.get(f"/api/v1/tasks/{mine['id']}/events")
        assert events.status_code == 200, events.text
        items = events.json()["items"]
        assert [(e["from_status"], e["to_status"], e["attempt"]) for e in items] == [
            (None, "Normal", 1),
            ("Normal", "Failed", 1),
        ]
        assert items[1]["message"] == "boom" and items[1]["epoch"] is not None and items[0]["epoch"] is None
        assert items[0]["task_id"] == mine["id"] and items[0]["at"].endswith("Z")
        assert admin.get(f"/api/v1/tasks/{mine['id']}/events").json() == events.json()
        # Another user's task: 404 (ids reveal nothing), like GET /tasks/{id}; none without a token.
        assert bob.get(f"/api/v1/tasks/{mine['id']}/events").status_code == 404
        with closed.client() as anonymous:
            assert anonymous.get(f"/api/v1/tasks/{mine['id']}/events").status_code == 401
        assert alice.get("/api/v1/tasks/424242/events").status_code == 404
        assert alice.get(f"/api/v1/tasks/{mine['id']}/events", params={"limit": 1}).json()["items"][0]["to_status"] == (
            "Failed"
        )
        assert alice.get(f"/api/v1/tasks/{mine['id']}/events", params={"limit": 0}).status_code == 422
        assert alice.get(f"/api/v1/tasks/{mine['id']}").json()["attempt"] == 1
