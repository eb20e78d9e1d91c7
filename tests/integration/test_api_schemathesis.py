"""Schemathesis against the live /openapi.json: no generated request, valid or not, gets a 5xx.

Every operation of the published schema is fuzzed in both of schemathesis's modes (positive: data
the schema allows; negative: data it forbids), with a valid token or whatever the case carries,
on SQLite and on MariaDB. Bounded (EXAMPLES per operation and mode) so a run stays well under
a minute.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode

from tests.support.api_server import ADMIN, ALICE, ApiServer, api_server, bearer, database_url

EXAMPLES = 40


@pytest.fixture(scope="module", params=["sqlite", "mariadb"])
def server(request: pytest.FixtureRequest) -> Iterator[ApiServer]:
    # A follow of a task that never runs ends at the idle timeout: short here, so examples stay fast.
    logs = {"logs": {"idle_timeout_seconds": 0.5, "poll_seconds": 0.1}}
    with database_url(request.param) as url, api_server(url, sections=logs) as running:
        with running.client(ALICE) as alice:  # a few rows, so ids and cancels sometimes hit something
            for i in range(5):
                alice.post("/api/v1/tasks", json={"name": f"seed-{i}", "info": {"image": "busybox"}})
        yield running


def test_the_schema_publishes_every_operation(server: ApiServer) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    labels = {result.ok().label for result in schema.get_all_operations()}
    assert labels == {
        "POST /api/v1/tasks",
        "GET /api/v1/tasks",
        "GET /api/v1/tasks/{task_id}",
        "GET /api/v1/tasks/{task_id}/events",
        "GET /api/v1/tasks/{task_id}/logs",
        "POST /api/v1/tasks/{task_id}/cancel",
        "GET /api/v1/summary",
        "GET /api/v1/whoami",
        "POST /api/v1/render",
        "GET /api/v1/profiles",
        "POST /api/v1/schedules",
        "GET /api/v1/schedules",
        "GET /api/v1/schedules/{schedule_id}",
        "POST /api/v1/schedules/{schedule_id}/pause",
        "POST /api/v1/schedules/{schedule_id}/resume",
        "POST /api/v1/schedules/{schedule_id}/trigger",
        "DELETE /api/v1/schedules/{schedule_id}",
        "GET /api/v1/schedules/{schedule_id}/next",
        "GET /api/v1/queues",
        "POST /api/v1/queues/{name}/pause",
        "POST /api/v1/queues/{name}/resume",
    }


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_no_generated_request_gets_a_server_error(server: ApiServer, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    seen: dict[int, int] = {}

    for operation in operations:
        strategy = operation.as_strategy(generation_mode=mode)

        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(case=strategy, token=st.sampled_from([ALICE, ADMIN, None]))
        def fuzz(case: Case, token: str | None) -> None:
            if token is not None:
                case.headers = {**(case.headers or {}), **bearer(token)}
            response = case.call(base_url=server.url)
            seen[response.status_code] = seen.get(response.status_code, 0) + 1
            assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code}\n" + (
                case.as_curl_command()
            )

        fuzz()
    # The run did reach the API's own answers, not only the framework's: (a few) successes and refusals.
    assert seen.get(200, 0) + seen.get(201, 0) + seen.get(202, 0) > 0 or mode is GenerationMode.NEGATIVE, seen
    assert sum(seen.values()) >= len(operations), seen
