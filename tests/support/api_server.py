"""A live nightwatch ASGI app for API tests: the container's `web_app` served by the real
`HttpEndpoint` (uvicorn in a thread) on a free port, over a real SQLite file or MariaDB."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from dependency_injector import providers

from nightwatch.app.container import Container, build_container
from nightwatch.app.http import HttpEndpoint
from nightwatch.domain.ports import JobLogs, TaskRepository
from tests.support.sql_backends import empty_mariadb, sqlite_url

ALICE = "alice-token-0123456789abcdef"
BOB = "bob-token-0123456789abcdef"
ADMIN = "admin-token-0123456789abcdef"
TOKENS = [
    {"token": ALICE, "user_id": 1},
    {"token": BOB, "user_id": 2},
    {"token": ADMIN, "user_id": 100, "admin": True},
]
ALLOWED_NAMESPACES = ["default", "demo"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class ApiServer:
    def __init__(self, container: Container, endpoint: HttpEndpoint) -> None:
        self.container = container
        self.endpoint = endpoint
        self.url = f"http://127.0.0.1:{endpoint.port}"

    @property
    def repository(self) -> TaskRepository:
        repository: TaskRepository = self.container.repository()
        return repository

    def client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=bearer(token) if token else {}, timeout=30)


@contextmanager
def database_url(backend: str) -> Iterator[str]:
    if backend == "mariadb":
        yield empty_mariadb()
    else:
        with sqlite_url() as url:
            yield url


@contextmanager
def api_server(
    database: str,
    *,
    api: dict[str, Any] | None = None,
    repository: TaskRepository | None = None,
    profiles: dict[str, Any] | None = None,
    job_logs: JobLogs | None = None,
    sections: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    port: int = 0,
) -> Iterator[ApiServer]:
    """Serve the app for `database` (a URL) with the test tokens unless `api` says otherwise;
    `repository` replaces the configured one (a hand-written fake, e.g. one that fails), `job_logs`
    the runner's output; `profiles` are the Job profiles (none: the built-in ones); `sections` and
    `extra` add configuration sections (e.g. `logs`, `queues`)."""
    settings = {
        **(extra or {}),
        "database": {"url": database},
        # Several users' tokens over the (never started) local runner: allowed explicitly.
        "runner": {"allowed_namespaces": ALLOWED_NAMESPACES, "local_multi_user": True},
        "api": {"tokens": TOKENS, **(api or {})},
        "profiles": profiles or {},
        **(sections or {}),
    }
    container = build_container(settings, load_plugins=False)
    if repository is not None:
        container.repository.override(providers.Object(repository))
    if job_logs is not None:
        container.job_logs.override(providers.Object(job_logs))
    endpoint = HttpEndpoint("127.0.0.1", port, container.web_app())
    endpoint.start()
    server = ApiServer(container, endpoint)
    try:
        _wait_until_serving(server.url)
        yield server
    finally:
        endpoint.stop()
        container.shutdown_resources()


def _wait_until_serving(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer /healthz within {timeout:.0f} s")
        time.sleep(0.05)
