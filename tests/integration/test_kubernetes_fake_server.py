"""The fake API server itself, through the official client and raw HTTP: it must behave like the real one.

Includes running it as its own process (as the benchmark does) and its throughput with TCP_NODELAY.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.fakekube.fixtures import api_client_for, running_fake_kube
from tests.fakekube.server import FakeKubeServer


@pytest.fixture
def kube() -> Iterator[tuple[FakeKubeServer, client.ApiClient]]:
    with running_fake_kube() as pair:
        yield pair


def job(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}},
    }


def status_body(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    return body


def test_create_sets_server_metadata_and_generate_name(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    _, api = kube
    batch = client.BatchV1Api(api)
    created = batch.create_namespaced_job("team", job("a"))
    assert created.metadata.namespace == "team" and created.metadata.uid and created.metadata.generation == 1
    assert created.metadata.resource_version and created.metadata.creation_timestamp
    generated = batch.create_namespaced_job("team", {**job(""), "metadata": {"generateName": "gen-"}})
    assert generated.metadata.name.startswith("gen-") and len(generated.metadata.name) == 9


def test_errors_are_status_bodies(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    server, api = kube
    batch = client.BatchV1Api(api)
    batch.create_namespaced_job("default", job("a"))
    cases = [
        (lambda: batch.create_namespaced_job("default", job("a")), 409, "AlreadyExists"),
        (lambda: batch.read_namespaced_job("nope", "default"), 404, "NotFound"),
        (lambda: batch.create_namespaced_job("default", job("Bad_Name")), 422, "Invalid"),
        (
            lambda: batch.create_namespaced_job(
                "default",
                {
                    **job("x"),
                    "spec": {
                        "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": ""}]}}
                    },
                },
            ),
            422,
            "Invalid",
        ),
    ]
    for call, code, reason in cases:
        with pytest.raises(ApiException) as caught:
            call()
        body = status_body(caught.value)
        assert (caught.value.status, body["reason"], body["code"], body["kind"]) == (code, reason, code, "Status")
        assert body["status"] == "Failure" and body["message"]
    server.inject(429, retry_after=7)
    with pytest.raises(ApiException) as caught:
        batch.list_namespaced_job("default")
    assert caught.value.status == 429 and caught.value.headers["Retry-After"] == "7"
    server.forbidden_namespaces.add("locked")
    with pytest.raises(ApiException) as caught:
        batch.list_namespaced_job("locked")
    assert status_body(caught.value)["reason"] == "Forbidden"


def test_label_selectors_and_pagination(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    _, api = kube
    batch = client.BatchV1Api(api)
    for i in range(5):
        batch.create_namespaced_job(
            "a", job(f"j{i}", {"team": "x" if i % 2 else "y", **({"gpu": "1"} if i < 2 else {})})
        )
    batch.create_namespaced_job("b", job("other", {"team": "x"}))

    def names(**kwargs: Any) -> list[str]:
        return [j.metadata.name for j in batch.list_namespaced_job("a", **kwargs).items]

    assert names(label_selector="team=x") == ["j1", "j3"]
    assert names(label_selector="team!=x") == ["j0", "j2", "j4"]
    assert names(label_selector="gpu") == ["j0", "j1"]
    assert names(label_selector="team=y,gpu") == ["j0"]
    assert names(label_selector="team in (x,z)") == ["j1", "j3"]
    seen, token, pages = [], None, 0
    while True:
        page = (
            batch.list_namespaced_job("a", limit=2, _continue=token)
            if token
            else batch.list_namespaced_job("a", limit=2)
        )
        pages += 1
        seen += [j.metadata.name for j in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert seen == ["j0", "j1", "j2", "j3", "j4"] and pages == 3
    everywhere = batch.list_job_for_all_namespaces(label_selector="team=x")
    assert [(j.metadata.namespace, j.metadata.name) for j in everywhere.items] == [
        ("a", "j1"),
        ("a", "j3"),
        ("b", "other"),
    ]


def test_patches_respect_the_status_subresource(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    _, api = kube
    batch = client.BatchV1Api(api)
    created = batch.create_namespaced_job("default", job("a"))
    patched = batch.patch_namespaced_job("a", "default", {"metadata": {"labels": {"k": "v"}}, "status": {"active": 5}})
    assert patched.metadata.labels == {"k": "v"} and patched.status.active is None
    patched = batch.patch_namespaced_job_status(
        "a", "default", {"status": {"active": 2}, "metadata": {"labels": {"z": "1"}}}
    )
    assert patched.status.active == 2 and "z" not in patched.metadata.labels
    patched = batch.patch_namespaced_job("a", "default", [{"op": "add", "path": "/metadata/labels/j", "value": "p"}])
    assert patched.metadata.labels == {"k": "v", "j": "p"}
    patched = batch.patch_namespaced_job("a", "default", {"spec": {"activeDeadlineSeconds": 30}})
    assert patched.metadata.generation == 2
    with pytest.raises(ApiException) as caught:
        batch.patch_namespaced_job("a", "default", {"metadata": {"resourceVersion": created.metadata.resource_version}})
    assert caught.value.status == 409 and status_body(caught.value)["reason"] == "Conflict"
    assert batch.read_namespaced_job_status("a", "default").status.active == 2


def test_delete_honours_propagation_policy(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    server, api = kube
    batch = client.BatchV1Api(api)
    for name in ("keep", "drop"):
        created = batch.create_namespaced_job("default", job(name))
        server.add_pod(
            "default", {"metadata": {"name": f"{name}-pod", "labels": {"controller-uid": created.metadata.uid}}}
        )
    status = batch.delete_namespaced_job("keep", "default", propagation_policy="Orphan")
    assert status["status"] == "Success"
    batch.delete_namespaced_job("drop", "default", body=client.V1DeleteOptions(propagation_policy="Foreground"))
    assert set(server.store.pods) == {("default", "keep-pod")}
    pods = client.CoreV1Api(api).list_namespaced_pod("default")
    assert [p.metadata.name for p in pods.items] == ["keep-pod"]
    assert dict(server.counters) == {"create": 2, "delete": 2, "list": 1}


def test_as_a_process_driven_over_http() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakekube", "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")

        def control(path: str, body: Any = None) -> Any:
            data = None if body is None else json.dumps(body).encode()
            request = urllib.request.Request(url + path, data=data, method="GET" if body is None else "POST")
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read())

        api = api_client_for(url, user_agent="replica-7")
        batch = client.BatchV1Api(api)
        batch.create_namespaced_job("default", job("a", {"nightwatch.io/task-id": "1"}))
        control("/_fake/jobs/default/a/state", {"state": "failed", "reason": "DeadlineExceeded"})
        assert batch.read_namespaced_job("a", "default").status.conditions[-1].reason == "DeadlineExceeded"
        control("/_fake/faults", {"kind": "500", "count": 1, "verb": "list"})
        with pytest.raises(ApiException):
            batch.list_namespaced_job("default")
        control("/_fake/controller", {"mode": "complete"})
        batch.create_namespaced_job("default", job("b"))
        deadline = time.monotonic() + 5
        while not batch.read_namespaced_job("b", "default").status.succeeded and time.monotonic() < deadline:
            time.sleep(0.02)
        assert batch.read_namespaced_job("b", "default").status.succeeded == 1
        counters = control("/_fake/counters")
        assert counters["verbs"]["create"] == 2 and counters["jobs"] == 2
        assert {j["name"]: j["created_by"] for j in control("/_fake/jobs")} == {"a": "replica-7", "b": "replica-7"}
        control("/_fake/pods/default", {"metadata": {"name": "p"}})
        control("/_fake/reset", {})
        assert control("/_fake/counters") == {"verbs": {}, "total": 0, "jobs": 0, "pods": 0}
        api.close()
    finally:
        proc.terminate()
        proc.wait(timeout=5)


def test_keep_alive_and_nodelay_give_hundreds_of_requests_per_second(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    _, api = kube
    batch = client.BatchV1Api(api)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(
            pool.map(
                lambda i: batch.create_namespaced_job("default", job(f"j{i}"), _preload_content=False).data, range(200)
            )
        )
    # Without TCP_NODELAY each request waits ~40 ms for a delayed ACK: 200 requests would take >2 s.
    assert time.monotonic() - started < 2.0


# -- deletion as a real API server does it: finalizers, Foreground, TTL-after-finished ---------------
HOLD = "example.com/hold"


def held_job(name: str, *, finalizers: list[str] | None = None, ttl: int | None = None) -> dict[str, Any]:
    body = job(name)
    body["metadata"]["finalizers"] = [HOLD] if finalizers is None else finalizers
    if ttl is not None:
        body["spec"]["ttlSecondsAfterFinished"] = ttl
    return body


def raw_job(api: client.ApiClient, name: str) -> dict[str, Any]:
    response = client.BatchV1Api(api).read_namespaced_job(name, "default", _preload_content=False)
    body: dict[str, Any] = json.loads(response.data)
    return body


def test_a_job_with_finalizers_is_only_marked_for_deletion_until_a_patch_empties_them(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    batch = client.BatchV1Api(api)
    batch.create_namespaced_job("default", held_job("held", finalizers=[HOLD, "example.com/other"]))
    answer = batch.delete_namespaced_job("held", "default", propagation_policy="Background", _preload_content=False)
    dying = json.loads(answer.data)
    assert dying["kind"] == "Job"  # not a Status: the object is still there
    assert dying["metadata"]["deletionTimestamp"] and dying["metadata"]["deletionGracePeriodSeconds"] == 0
    # Still gettable and listed, with its finalizers
    assert raw_job(api, "held")["metadata"]["finalizers"] == [HOLD, "example.com/other"]
    assert [j.metadata.name for j in batch.list_namespaced_job("default").items] == ["held"]
    # Removing one finalizer is not enough; removing the last one removes the Job.
    batch.patch_namespaced_job("held", "default", [{"op": "remove", "path": "/metadata/finalizers/1"}])
    assert raw_job(api, "held")["metadata"]["finalizers"] == [HOLD]
    batch.patch_namespaced_job("held", "default", [{"op": "remove", "path": "/metadata/finalizers/0"}])
    with pytest.raises(ApiException) as missing:
        batch.read_namespaced_job("held", "default")
    assert missing.value.status == 404
    assert server.store.jobs == {}


def test_a_dying_job_takes_no_new_finalizer_and_keeps_its_deletion_timestamp(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    _, api = kube
    batch = client.BatchV1Api(api)
    batch.create_namespaced_job("default", held_job("held"))
    batch.delete_namespaced_job("held", "default")
    with pytest.raises(ApiException) as refused:
        batch.patch_namespaced_job("held", "default", {"metadata": {"finalizers": [HOLD, "example.com/new"]}})
    assert refused.value.status == 422
    assert "no new finalizers can be added if the object is being deleted" in status_body(refused.value)["message"]
    batch.patch_namespaced_job("held", "default", {"metadata": {"deletionTimestamp": None, "labels": {"a": "b"}}})
    assert raw_job(api, "held")["metadata"]["deletionTimestamp"]


def test_foreground_deletion_keeps_the_job_until_its_pods_are_gone(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    batch = client.BatchV1Api(api)
    server.store.defer_garbage_collection = True
    created = batch.create_namespaced_job("default", job("fg"))
    server.add_pod("default", {"metadata": {"name": "fg-pod", "labels": {"controller-uid": created.metadata.uid}}})
    batch.delete_namespaced_job("fg", "default", propagation_policy="Foreground")
    dying = raw_job(api, "fg")
    assert dying["metadata"]["finalizers"] == ["foregroundDeletion"] and dying["metadata"]["deletionTimestamp"]
    assert ("default", "fg-pod") in server.store.pods
    server.store.collect_garbage()  # the garbage collector deletes the pods, then drops foregroundDeletion
    assert server.store.pods == {} and server.store.jobs == {}


def test_a_create_while_the_old_job_is_being_deleted_is_409_object_is_being_deleted(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    batch = client.BatchV1Api(api)
    batch.create_namespaced_job("default", held_job("again"))
    batch.delete_namespaced_job("again", "default", propagation_policy="Foreground")
    with pytest.raises(ApiException) as conflict:
        batch.create_namespaced_job("default", job("again"))
    assert conflict.value.status == 409
    body = status_body(conflict.value)
    assert body["reason"] == "AlreadyExists"
    assert body["message"] == 'object is being deleted: jobs.batch "again" already exists'
    server.remove_finalizers("default", "again")
    batch.create_namespaced_job("default", job("again"))  # gone: the name is free again


def test_delete_checks_a_uid_precondition(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    server, api = kube
    batch = client.BatchV1Api(api)
    created = batch.create_namespaced_job("default", job("pre"))
    with pytest.raises(ApiException) as conflict:
        batch.delete_namespaced_job(
            "pre", "default", body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="not-the-uid"))
        )
    assert conflict.value.status == 409
    assert "Precondition failed: UID in precondition: not-the-uid" in status_body(conflict.value)["message"]
    assert ("default", "pre") in server.store.jobs
    batch.delete_namespaced_job(
        "pre", "default", body=client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=created.metadata.uid))
    )
    assert server.store.jobs == {}


def test_the_ttl_controller_deletes_finished_jobs_with_foreground_propagation(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    batch = client.BatchV1Api(api)
    server.store.defer_garbage_collection = True  # to see the Foreground deletion's own finalizer
    batch.create_namespaced_job("default", held_job("plain", finalizers=[], ttl=0))
    batch.create_namespaced_job("default", held_job("held", ttl=0))
    batch.create_namespaced_job("default", held_job("later", finalizers=[], ttl=1))
    batch.create_namespaced_job("default", held_job("running", finalizers=[], ttl=0))
    batch.create_namespaced_job("default", held_job("no-ttl", finalizers=[]))
    server.set_controller("off", collect_finished=True)  # Jobs move only through hooks; the TTL controller runs
    for name in ("plain", "held", "later", "no-ttl"):
        server.set_job_state("default", name, "succeeded" if name != "held" else "failed")
    server.set_job_state("default", "running", "active")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not raw_job(api, "plain")["metadata"].get("deletionTimestamp"):
        time.sleep(0.02)
    assert raw_job(api, "plain")["metadata"]["finalizers"] == ["foregroundDeletion"]
    held = raw_job(api, "held")["metadata"]
    assert held["finalizers"] == [HOLD, "foregroundDeletion"] and held["deletionTimestamp"]
    assert not raw_job(api, "later")["metadata"].get("deletionTimestamp")  # its 1 s have not passed
    server.store.collect_garbage()
    names = {j.metadata.name for j in batch.list_namespaced_job("default").items}
    assert names == {"held", "later", "running", "no-ttl"}  # held stays until its finalizer goes
    assert raw_job(api, "held")["status"]["conditions"][-1]["type"] == "Failed"  # its outcome still readable
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not raw_job(api, "later")["metadata"].get("deletionTimestamp"):
        time.sleep(0.05)
    server.store.collect_garbage()
    names = {j.metadata.name for j in batch.list_namespaced_job("default").items}
    assert names == {"held", "running", "no-ttl"}
    server.remove_finalizers("default", "held")
    assert set(server.store.jobs) == {("default", "running"), ("default", "no-ttl")}
    assert server.controller.collected == {("default", "plain"), ("default", "held"), ("default", "later")}
