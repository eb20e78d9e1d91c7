"""The fake API server itself, through the official client and raw HTTP: it must behave like the real one.

Includes running it as its own process (as the benchmark does) and its throughput with TCP_NODELAY.
"""

from __future__ import annotations

import json
import re
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
from tests.support.waiting import wait_until


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


# -- admission, Events, suspend and terminating pods (issue 15) -------------------------------------
RESTRICTED = (
    'violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false '
    '(container "c" must set securityContext.allowPrivilegeEscalation=false)'
)


def _pods_of(server: FakeKubeServer, namespace: str, name: str) -> list[dict[str, Any]]:
    uid = server.job(namespace, name)["metadata"]["uid"]
    with server.store.lock:
        return [
            dict(p)
            for (ns, _), p in server.store.pods.items()
            if ns == namespace and p["metadata"]["labels"].get("controller-uid") == uid
        ]


def test_admission_that_refuses_pods_lets_the_job_in_and_records_failed_create(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    core = client.CoreV1Api(api)
    server.refuse_pods("locked", RESTRICTED)
    server.set_controller("timed", active_after_ms=0, complete_after_ms=60_000)
    created = client.BatchV1Api(api).create_namespaced_job("locked", job("a"))  # the Job is admitted

    def failed_create() -> list[Any]:
        return core.list_namespaced_event("locked", field_selector="involvedObject.kind=Job,reason=FailedCreate").items

    events = wait_until(failed_create, 5, interval=0.02, what="a FailedCreate Event")
    event = events[0]
    assert (event.type, event.reason, event.count) == ("Warning", "FailedCreate", 1)
    assert (event.involved_object.kind, event.involved_object.name) == ("Job", "a")
    assert (event.involved_object.namespace, event.involved_object.uid) == ("locked", created.metadata.uid)
    assert re.fullmatch(r'Error creating: pods "a-[0-9a-f]{5}" is forbidden: ' + re.escape(RESTRICTED), event.message)
    time.sleep(0.05)
    status = server.job("locked", "a")["status"]
    assert status.get("active", 0) == 0 and not status.get("conditions") and status.get("startTime")
    assert _pods_of(server, "locked", "a") == []
    with pytest.raises(ApiException) as refused:  # a pod created directly is refused the same way
        core.create_namespaced_pod("locked", {"metadata": {"name": "p"}, "spec": {"containers": []}})
    assert refused.value.status == 403 and RESTRICTED in status_body(refused.value)["message"]
    server.refuse_pods("locked", None)  # admitted again: the Job runs
    wait_until(lambda: server.job("locked", "a")["status"].get("active") == 1, 5, interval=0.02, what="active")


def test_events_are_served_with_field_selectors_and_pages(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    server, api = kube
    core = client.CoreV1Api(api)
    batch = client.BatchV1Api(api)
    for namespace in ("ns-a", "ns-b"):
        for name in ("one", "two", "three"):
            created = batch.create_namespaced_job(namespace, job(name))
            raw = server.job(namespace, created.metadata.name)
            server.events.record(raw, "Job", "Warning", "FailedCreate", f"Error creating: {name}")
            server.events.record(raw, "Job", "Normal", "SuccessfulCreate", f"Created pod: {name}-x")
    server.events.record(server.job("ns-a", "one"), "Job", "Warning", "FailedCreate", "Error creating: one")

    def names(selector: str, namespace: str | None = "ns-a") -> list[tuple[str, str, int]]:
        listed = (
            core.list_namespaced_event(namespace, field_selector=selector)
            if namespace
            else core.list_event_for_all_namespaces(field_selector=selector)
        )
        return sorted((e.involved_object.name, e.reason, e.count) for e in listed.items)

    assert names("involvedObject.kind=Job,reason=FailedCreate") == [
        ("one", "FailedCreate", 2),  # the repeat is aggregated into one Event
        ("three", "FailedCreate", 1),
        ("two", "FailedCreate", 1),
    ]
    assert names("involvedObject.name=two") == [("two", "FailedCreate", 1), ("two", "SuccessfulCreate", 1)]
    assert names("type=Warning,involvedObject.name!=one") == [("three", "FailedCreate", 1), ("two", "FailedCreate", 1)]
    assert names("reason==SuccessfulCreate", None) == [
        (n, "SuccessfulCreate", 1) for n in sorted(["one", "two", "three"] * 2)
    ]
    assert names("involvedObject.kind=Pod") == []
    seen, token, pages = [], None, 0
    while True:
        page = core.list_namespaced_event("ns-b", limit=2, _continue=token)
        seen += [e.metadata.name for e in page.items]
        pages += 1
        token = page.metadata._continue
        if not token:
            break
    assert pages == 3 and len(seen) == len(set(seen)) == 6
    with pytest.raises(ApiException) as bad:
        core.list_namespaced_event("ns-a", field_selector="spec.nodeName=x")
    assert bad.value.status == 400


def test_suspend_deletes_the_active_pods_and_sets_suspended_and_resume_clears_it(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    batch = client.BatchV1Api(api)
    server.set_controller("timed", active_after_ms=0, complete_after_ms=60_000, pods=True)
    batch.create_namespaced_job("default", job("a"))
    wait_until(lambda: _pods_of(server, "default", "a"), 5, interval=0.02, what="a running pod")
    assert server.job("default", "a")["status"]["active"] == 1

    batch.patch_namespaced_job("a", "default", {"spec": {"suspend": True}})

    def suspended() -> Any:
        status = server.job("default", "a")["status"]
        return [c for c in status.get("conditions") or () if c["type"] == "Suspended" and c["status"] == "True"]

    (condition,) = wait_until(suspended, 5, interval=0.02, what="Suspended=True")
    assert (condition["reason"], condition["message"]) == ("JobSuspended", "Job suspended")
    status = server.job("default", "a")["status"]
    assert status["active"] == 0 and "startTime" not in status
    assert _pods_of(server, "default", "a") == []  # the active pod was deleted

    batch.patch_namespaced_job("a", "default", {"spec": {"suspend": False}})
    wait_until(lambda: server.job("default", "a")["status"].get("active") == 1, 5, interval=0.02, what="resumed")
    conditions = server.job("default", "a")["status"]["conditions"]
    assert [(c["type"], c["status"], c["reason"]) for c in conditions] == [("Suspended", "False", "JobResumed")]
    assert len(_pods_of(server, "default", "a")) == 1


def test_a_deadline_sets_failure_target_while_pods_terminate_and_failed_after(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    server.set_controller("timed", active_after_ms=0, complete_after_ms=60_000, pods=True, terminate_after_ms=300)
    body = job("slow")
    body["spec"]["activeDeadlineSeconds"] = 1
    client.BatchV1Api(api).create_namespaced_job("default", body)

    def types() -> list[str]:
        return [c["type"] for c in server.job("default", "slow")["status"].get("conditions") or ()]

    wait_until(lambda: types() == ["FailureTarget"], 5, interval=0.01, what="FailureTarget")
    status = server.job("default", "slow")["status"]
    (target,) = status["conditions"]
    assert (target["reason"], target["message"]) == (
        "DeadlineExceeded",
        "Job was active longer than specified deadline",
    )
    assert status["terminating"] == 1 and status["active"] == 0
    (pod,) = _pods_of(server, "default", "slow")
    assert pod["metadata"].get("deletionTimestamp") and "running" in pod["status"]["containerStatuses"][0]["state"]

    wait_until(lambda: "Failed" in types(), 5, interval=0.01, what="Failed")
    status = server.job("default", "slow")["status"]
    assert types() == ["FailureTarget", "Failed"] and status["terminating"] == 0 and status["failed"] == 1
    (pod,) = _pods_of(server, "default", "slow")
    assert pod["status"]["phase"] == "Failed"
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137
