"""Pytest fixtures and helpers around the fake API server.

`fake_kube` (and the `running_fake_kube()` context manager, for a module's own fixture) yields
(server, ApiClient) for a server on a free port in a thread; `write_kubeconfig`
writes a kubeconfig pointing at a server, for end-to-end tests that run `nightwatch run` with
KUBECONFIG. Use from a test module or conftest: `from tests.fakekube.fixtures import fake_kube`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.fakekube.server import FakeKubeServer


def api_client_for(
    url: str, *, user_agent: str = "nightwatch-tests", pool_maxsize: int = 16, token: str | None = None
) -> client.ApiClient:
    """An official-client ApiClient for the fake (a bearer `token` if given; urllib3's own retries off,
    as in production)."""
    configuration = client.Configuration(host=url)
    if token is not None:
        configuration.api_key["BearerToken"] = f"Bearer {token}"
    configuration.connection_pool_maxsize = pool_maxsize
    configuration.retries = False
    api = client.ApiClient(configuration)
    api.user_agent = user_agent
    return api


def write_kubeconfig(
    path: Path,
    url: str,
    *,
    context: str = "fake",
    namespace: str = "default",
    token: str = "fake-token",
    token_file: Path | None = None,
) -> Path:
    """Write a kubeconfig whose current context points at `url`, with `token` (which the fake ignores unless
    it was given a token) or, if given, `tokenFile: token_file` (as a projected service-account token is)."""
    user = {"tokenFile": str(token_file)} if token_file is not None else {"token": token}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": url}}],
        "users": [{"name": context, "user": user}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context, "namespace": namespace}}],
        "current-context": context,
    }
    path.write_text(yaml.safe_dump(config))
    return path


@contextmanager
def running_fake_kube(*, user_agent: str = "nightwatch-tests") -> Iterator[tuple[FakeKubeServer, client.ApiClient]]:
    """A fake API server on a free port in a thread, and an ApiClient for it; both closed on exit."""
    server = FakeKubeServer().start()
    api = api_client_for(server.url, user_agent=user_agent)
    try:
        yield server, api
    finally:
        api.close()
        server.stop()


@pytest.fixture
def fake_kube() -> Iterator[tuple[FakeKubeServer, client.ApiClient]]:
    """The fixture form (register it from a conftest: `from tests.fakekube.fixtures import fake_kube`)."""
    with running_fake_kube() as pair:
        yield pair
