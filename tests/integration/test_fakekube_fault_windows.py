"""The fake API server's time-window faults: every matching request fails while the window lasts,
count faults wait behind an open window, and a delayed create is still stored (a slow server)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.fakekube.fixtures import running_fake_kube

JOB = {
    "metadata": {"name": "slow"},
    "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}},
}


def statuses(batch: client.BatchV1Api, calls: int) -> list[int]:
    found = []
    for _ in range(calls):
        try:
            batch.list_namespaced_job("default")
            found.append(200)
        except ApiException as exc:
            found.append(int(exc.status))
    return found


def test_a_window_fails_every_matching_request_until_its_deadline() -> None:
    with running_fake_kube() as (server, api):
        batch = client.BatchV1Api(api)
        server.inject(500, count=2)  # queued behind the window, then used up after it
        server.inject(503, verb="list", seconds=0.6)
        assert statuses(batch, 5) == [503] * 5
        with pytest.raises(ApiException) as caught:
            batch.read_namespaced_job("absent", "default")
        assert caught.value.status == 500  # the queued count fault took this get
        time.sleep(0.7)
        assert not server.faults.window_open()
        assert statuses(batch, 3) == [500, 200, 200]
        assert server.faults.fired_by_kind["503"] == 5


def test_a_429_window_says_retry_after() -> None:
    with running_fake_kube() as (server, api):
        server.inject(429, seconds=5, retry_after=4)
        with pytest.raises(ApiException) as caught:
            client.BatchV1Api(api).list_namespaced_job("default")
        assert caught.value.status == 429 and caught.value.headers["Retry-After"] == "4"


def test_a_create_that_times_out_on_the_client_is_still_stored() -> None:
    with running_fake_kube() as (server, api):
        server.inject("delay", verb="create", seconds=5, delay_seconds=0.8)
        batch = client.BatchV1Api(api)
        with pytest.raises(Exception):  # noqa: B017 - urllib3's ReadTimeoutError, whatever wraps it
            batch.create_namespaced_job("default", JOB, _request_timeout=0.2)
        time.sleep(1.0)
        assert server.job("default", "slow")["metadata"]["name"] == "slow"


def test_concurrent_requests_in_a_window_are_all_answered() -> None:
    with running_fake_kube() as (server, api):
        server.inject(500, seconds=30)
        batch = client.BatchV1Api(api)
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda _: statuses(batch, 10), range(8)))
        assert [c for per_thread in codes for c in per_thread] == [500] * 80
        assert server.faults.fired == 80
