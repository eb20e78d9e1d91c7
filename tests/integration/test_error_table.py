"""The error table (`app/errors.py`) from both ends: every row, raised behind the real ASGI app,
is answered with the row's status and headers, and `ApiClient` turns that answer back into the
row's own domain error (the problems of an InvalidTaskSpec included), over real HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import NamedTuple

import httpx
import pytest
from prometheus_client import CollectorRegistry

from nightwatch.adapters.apscheduler import ApschedulerCalendar
from nightwatch.adapters.memory import FakeClock, MemoryScheduleRepository, MemoryTaskRepository
from nightwatch.app.api import ApiBackend, create_app
from nightwatch.app.client import ApiClient, ApiRefused
from nightwatch.app.config import ApiSettings
from nightwatch.app.errors import ERRORS, ErrorRow, error_for
from nightwatch.app.http import HttpEndpoint
from nightwatch.app.usecases.cancel import RequestCancel
from nightwatch.app.usecases.schedules import ScheduleCommands, ScheduleRequest
from nightwatch.app.usecases.submit import SubmitTask
from nightwatch.domain.errors import (
    DuplicateSchedule,
    DuplicateTask,
    InvalidTaskSpec,
    InvalidTransition,
    NightwatchError,
    PermanentError,
    Problem,
    QueueNotFound,
    ScheduleNotFound,
    TaskNotFound,
)
from nightwatch.domain.model import Task, TaskId
from nightwatch.domain.ports import NewSchedule, NewTask
from nightwatch.domain.schedules import Schedule, ScheduleId
from nightwatch.domain.submission import SubmissionPolicy

TOKEN = "error-table-token-0123456789"
INFO = {"image": "busybox"}
PROBLEMS = (Problem(("name",), "task name is bad"), Problem(("info", "env", 0, "name"), "must not be empty"))


class Failing(MemoryTaskRepository):
    """Raises `fail` from every call the routes make, once it is set."""

    def __init__(self) -> None:
        super().__init__()
        self.fail: NightwatchError | None = None

    def _maybe_fail(self) -> None:
        if self.fail is not None:
            raise self.fail

    def get(self, task_id: TaskId) -> Task:
        self._maybe_fail()
        return super().get(task_id)

    def add(self, task: NewTask, now: datetime) -> Task:
        self._maybe_fail()
        return super().add(task, now)

    def request_cancel(self, task_id: TaskId) -> Task:
        self._maybe_fail()
        return super().request_cancel(task_id)


class FailingSchedules(MemoryScheduleRepository):
    """The schedule store, failing with its task store's `fail` (the schedule routes' errors)."""

    def __init__(self, tasks: Failing) -> None:
        super().__init__(tasks)
        self._failing = tasks

    def add(self, schedule: NewSchedule, now: datetime) -> Schedule:
        self._failing._maybe_fail()
        return super().add(schedule, now)

    def get(self, schedule_id: ScheduleId) -> Schedule:
        self._failing._maybe_fail()
        return super().get(schedule_id)


class Served(NamedTuple):
    repository: Failing
    url: str
    task_id: int


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    repository = Failing()
    clock = FakeClock()
    schedules = ScheduleCommands(
        FailingSchedules(repository), repository, ApschedulerCalendar(), clock, SubmissionPolicy(), repository
    )
    backend = ApiBackend(
        repository, SubmitTask(repository, clock, SubmissionPolicy()), RequestCancel(repository), schedules=schedules
    )
    app = create_app(
        backend,
        ApiSettings.model_validate({"tokens": [{"token": TOKEN, "user_id": 1}]}),
        reads_open=True,
        registry=CollectorRegistry(),
        readiness=lambda: (True, {}),
    )
    endpoint = HttpEndpoint("127.0.0.1", 0, app)
    endpoint.start()
    try:
        url = f"http://127.0.0.1:{endpoint.port}"
        with ApiClient(url, TOKEN) as client:
            task_id = client.submit("exists", "default", INFO).id  # so get and cancel reach the repository
            schedules.create(ScheduleRequest(name="exists", cron="@hourly", info=INFO))  # id 1: GET reaches it
        yield Served(repository, url, task_id)
    finally:
        endpoint.stop()


def the_error(row: ErrorRow) -> NightwatchError:
    if row.error is InvalidTaskSpec:
        return InvalidTaskSpec("two problems", PROBLEMS)
    return row.error("it went wrong")


# The request that can run into each error: a 409 means DuplicateTask on a submit, InvalidTransition
# on a cancel (the client tells them apart by the request, as the server's answer is the same).
Call = Callable[[ApiClient, int], object]
CALLS: dict[type[NightwatchError], tuple[str, Call]] = {
    DuplicateTask: ("POST /tasks", lambda c, _id: c.submit("new", "default", INFO)),
    InvalidTaskSpec: ("POST /tasks", lambda c, _id: c.submit("new", "default", INFO)),
    InvalidTransition: ("POST /tasks/{id}/cancel", lambda c, task_id: c.cancel(task_id)),
    DuplicateSchedule: (
        "POST /schedules",
        lambda c, _id: c.create_schedule(ScheduleRequest(name="new", cron="@hourly", info=INFO)),
    ),
    ScheduleNotFound: ("GET /schedules/1", lambda c, _id: c.schedule("default", "exists")),
    # A 404 is QueueNotFound to the client's queue requests (`missing=`), TaskNotFound to the others.
    QueueNotFound: (
        "GET /tasks/{id}",
        lambda c, task_id: c._call("GET", f"/api/v1/tasks/{task_id}", missing=QueueNotFound),
    ),
}
GET: tuple[str, Call] = ("GET /tasks/{id}", lambda c, task_id: c.get(task_id))


@pytest.mark.parametrize("row", ERRORS, ids=lambda row: row.error.__name__)
def test_every_row_round_trips_from_server_to_client(served: Served, row: ErrorRow) -> None:
    repository, url, task_id = served
    repository.fail = raised = the_error(row)
    request, call = CALLS.get(row.error, GET)
    try:
        method, path = request.split()
        body: dict[str, object] | None = None
        if method == "POST" and path == "/tasks":
            body = {"name": "new", "info": INFO}
        elif method == "POST" and path == "/schedules":
            body = {"name": "new", "cron": "@hourly", "info": INFO}
        answer = httpx.request(
            method, url + "/api/v1" + path.format(id=task_id), json=body, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert answer.status_code == row.status
        assert {k.lower(): v for k, v in row.headers.items()}.items() <= answer.headers.items()

        with ApiClient(url, TOKEN) as client, pytest.raises(NightwatchError) as caught:
            call(client, task_id)
    finally:
        repository.fail = None
    assert type(caught.value) is row.error
    if isinstance(raised, InvalidTaskSpec):
        assert isinstance(caught.value, InvalidTaskSpec) and caught.value.problems == PROBLEMS
    elif row.status < 500:
        assert str(caught.value) == "it went wrong"
    else:  # a 503 says only that the database is unavailable: the driver's message stays in the log
        assert "database unavailable" in str(caught.value) and "it went wrong" not in str(caught.value)


def test_the_table_names_each_error_once_and_covers_the_domains_answers() -> None:
    errors = [row.error for row in ERRORS]
    assert len(set(errors)) == len(errors)
    assert {TaskNotFound, DuplicateTask, InvalidTransition, InvalidTaskSpec, PermanentError} <= set(errors)


def test_a_status_without_a_row_is_not_a_domain_error(served: Served) -> None:
    assert error_for(403, "no") is None
    assert type(error_for(409, "x")) is PermanentError  # no request said which conflict to expect
    with ApiClient(served.url, "a-wrong-token-0123456789") as client, pytest.raises(ApiRefused, match="401"):
        client.cancel(served.task_id)
