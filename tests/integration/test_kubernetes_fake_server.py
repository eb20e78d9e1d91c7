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


# -- as strict as a real API server (issue 15) ------------------------------------------------------
def container(**fields: Any) -> dict[str, Any]:
    return {"name": "c", "image": "busybox", **fields}


def job_with(name: str = "a", **fields: Any) -> dict[str, Any]:
    body = job(name)
    body["spec"]["template"]["spec"]["containers"] = [container(**fields)]
    return body


def refused(api: client.ApiClient, body: dict[str, Any], namespace: str = "default") -> ApiException:
    with pytest.raises(ApiException) as caught:
        client.BatchV1Api(api).create_namespaced_job(namespace, body)
    return caught.value


def test_a_422_is_the_real_status_body_with_a_field_per_cause(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    _, api = kube
    exc = refused(api, job_with(image=""))
    body = status_body(exc)
    assert (exc.status, body["reason"], body["code"]) == (422, "Invalid", 422)
    assert body["details"] == {
        "name": "a",
        "group": "batch",
        "kind": "Job",
        "causes": [
            {
                "reason": "FieldValueRequired",
                "message": "Required value",
                "field": "spec.template.spec.containers[0].image",
            }
        ],
    }
    assert body["message"] == 'Job.batch "a" is invalid: spec.template.spec.containers[0].image: Required value'
    several = status_body(refused(api, job_with(image=" busybox", env=[{"name": "A=B"}, {"name": ""}])))
    assert [c["field"] for c in several["details"]["causes"]] == [
        "spec.template.spec.containers[0].image",
        "spec.template.spec.containers[0].env[0].name",
        "spec.template.spec.containers[0].env[1].name",
    ]
    assert several["message"].startswith('Job.batch "a" is invalid: [spec.template.spec.containers[0].image: ')
    assert "printable ASCII characters other than '='" in several["message"]


def test_the_pod_template_resources_are_validated(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    _, api = kube
    path = "spec.template.spec.containers[0].resources"
    over = status_body(refused(api, job_with(resources={"requests": {"cpu": "2"}, "limits": {"cpu": "1500m"}})))
    assert over["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: "2": must be less than or equal to cpu limit of 1500m',
            "field": f"{path}.requests",
        }
    ]
    negative = status_body(refused(api, job_with(resources={"limits": {"memory": "-1Mi"}})))
    assert [c["field"] for c in negative["details"]["causes"]] == [f"{path}.limits[memory]"]
    gpu = status_body(refused(api, job_with(resources={"requests": {"nvidia.com/gpu": "1"}})))
    assert gpu["details"]["causes"][0]["field"] == f"{path}.limits"
    # A quantity the decoder cannot read never reaches validation: a 400, as kube-apiserver answers.
    lots = refused(api, job_with(resources={"limits": {"cpu": "lots"}}))
    assert lots.status == 400 and status_body(lots)["reason"] == "BadRequest"
    assert "quantities must match the regular expression" in status_body(lots)["message"]
    client.BatchV1Api(api).create_namespaced_job(
        "default", job_with(resources={"requests": {"cpu": "500m", "memory": "1G"}, "limits": {"cpu": "1"}})
    )


def test_names_of_64_characters_or_with_a_trailing_newline_are_invalid(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    _, api = kube
    batch = client.BatchV1Api(api)
    batch.create_namespaced_job("default", job("a" * 63))
    long = status_body(refused(api, job("a" * 64)))
    assert long["code"] == 422 and {c["field"] for c in long["details"]["causes"]} == {"spec.template.labels"}
    assert f'Job.batch "{"a" * 64}" is invalid: spec.template.labels: Invalid value: ' in long["message"]
    assert "must be no more than 63 characters" in long["message"]
    newline = status_body(refused(api, job("abc\n")))
    assert newline["code"] == 422 and newline["details"]["causes"][0]["field"] == "metadata.name"
    assert newline["details"]["causes"][0]["message"].startswith('Invalid value: "abc\\n": a lowercase RFC 1123')


def test_a_malformed_continue_is_400_and_an_expired_one_410_with_a_fresh_token(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    batch = client.BatchV1Api(api)
    for i in range(5):
        batch.create_namespaced_job("default", job(f"j{i}"))
    with pytest.raises(ApiException) as caught:
        batch.list_namespaced_job("default", limit=2, _continue="not-a-token")
    assert caught.value.status == 400 and status_body(caught.value)["reason"] == "BadRequest"
    assert "invalid continue token" in status_body(caught.value)["message"]
    first = batch.list_namespaced_job("default", limit=2)
    server.compact()
    with pytest.raises(ApiException) as caught:
        batch.list_namespaced_job("default", limit=2, _continue=first.metadata._continue)
    expired = status_body(caught.value)
    assert (caught.value.status, expired["reason"], expired["code"]) == (410, "Expired", 410)
    assert expired["message"].startswith("The provided continue parameter is too old to display a consistent list")
    fresh = expired["metadata"]["continue"]
    rest: list[str] = []
    while fresh:
        page = batch.list_namespaced_job("default", limit=2, _continue=fresh)
        rest += [j.metadata.name for j in page.items]
        fresh = page.metadata._continue
    assert [j.metadata.name for j in first.items] + rest == ["j0", "j1", "j2", "j3", "j4"]
    server.expire_continue_tokens(1)
    with pytest.raises(ApiException) as caught:
        batch.list_namespaced_job(
            "default", limit=2, _continue=batch.list_namespaced_job("default", limit=2).metadata._continue
        )
    assert caught.value.status == 410


def test_429_is_plain_text_with_retry_after_as_priority_and_fairness_answers(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    batch = client.BatchV1Api(api)
    server.inject(429, retry_after=7)
    with pytest.raises(ApiException) as caught:
        batch.list_namespaced_job("default")
    assert caught.value.status == 429 and caught.value.headers["Retry-After"] == "7"
    assert caught.value.headers["Content-Type"].startswith("text/plain")
    assert caught.value.body == "Too many requests, please try again later.\n"
    server.inject("429-status", retry_after=3)
    with pytest.raises(ApiException) as caught:
        batch.list_namespaced_job("default")
    assert status_body(caught.value)["reason"] == "TooManyRequests" and caught.value.headers["Retry-After"] == "3"


def test_a_create_in_a_namespace_that_does_not_exist_is_404(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    server, api = kube
    batch = client.BatchV1Api(api)
    batch.create_namespaced_job("anything", job("a"))  # by default every namespace exists
    server.namespaces = {"default"}
    exc = refused(api, job("a"), namespace="gone")
    body = status_body(exc)
    assert (exc.status, body["reason"], body["message"]) == (404, "NotFound", 'namespaces "gone" not found')
    assert body["details"] == {"name": "gone", "kind": "namespaces"}
    assert batch.list_namespaced_job("gone").items == []  # reading an absent namespace is an empty list
    batch.create_namespaced_job("default", job("a"))


def test_requests_need_the_current_bearer_token(tmp_path: Any) -> None:
    server = FakeKubeServer(token="first").start()
    try:
        anonymous = api_client_for(server.url)
        with pytest.raises(ApiException) as caught:
            client.BatchV1Api(anonymous).list_namespaced_job("default")
        assert (caught.value.status, status_body(caught.value)["reason"]) == (401, "Unauthorized")
        authed = api_client_for(server.url, token="first")
        client.BatchV1Api(authed).create_namespaced_job("default", job("a"))
        server.rotate_token("second")
        with pytest.raises(ApiException) as caught:
            client.BatchV1Api(authed).read_namespaced_job("a", "default")
        assert caught.value.status == 401
        rotated = api_client_for(server.url, token="second")
        assert client.BatchV1Api(rotated).read_namespaced_job("a", "default").metadata.name == "a"
        for api in (anonymous, authed, rotated):
            api.close()
    finally:
        server.stop()


def test_a_quota_403_on_create_counts_every_job_and_comes_before_already_exists(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    batch = client.BatchV1Api(api)
    batch.create_namespaced_job("team", job("x"))
    server.set_job_quota("team", 1, name="q")
    exc = refused(api, job("y"), namespace="team")
    body = status_body(exc)
    assert (exc.status, body["reason"]) == (403, "Forbidden")
    assert body["message"] == (
        'jobs.batch "y" is forbidden: exceeded quota: q, requested: count/jobs.batch=1, used: count/jobs.batch=1, '
        "limited: count/jobs.batch=1"
    )
    assert refused(api, job("x"), namespace="team").status == 403  # admission runs before the name is checked
    batch.create_namespaced_job("other", job("y"))  # a quota is per namespace
    batch.delete_namespaced_job("x", "team")
    batch.create_namespaced_job("team", job("y"))


def test_namespace_lifecycle_403s(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    server, api = kube
    server.admission_not_ready = 1
    not_ready = status_body(refused(api, job("a")))
    assert (not_ready["code"], not_ready["message"]) == (
        403,
        'jobs.batch "a" is forbidden: not yet ready to handle request',
    )
    client.BatchV1Api(api).create_namespaced_job("default", job("a"))
    server.terminating_namespaces.add("dying")
    dying = status_body(refused(api, job("a"), namespace="dying"))
    assert dying["code"] == 403 and dying["message"] == (
        'jobs.batch "a" is forbidden: unable to create new content in namespace dying because it is being terminated'
    )
    assert dying["details"]["causes"] == [
        {
            "reason": "NamespaceTerminating",
            "message": "namespace dying is being terminated",
            "field": "metadata.namespace",
        }
    ]


def test_an_rbac_403_names_the_verb_and_the_resource(kube: tuple[FakeKubeServer, client.ApiClient]) -> None:
    server, api = kube
    server.forbidden_namespaces.add("locked")
    body = status_body(refused(api, job("a"), namespace="locked"))
    assert body["message"] == (
        'jobs.batch is forbidden: User "system:serviceaccount:nightwatch:nightwatch" cannot create resource "jobs" '
        'in API group "batch" in the namespace "locked"'
    )
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(api).list_namespaced_pod("locked")
    assert 'cannot list resource "pods" in API group ""' in status_body(caught.value)["message"]


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


def test_a_fault_with_a_path_fails_only_the_requests_to_that_path(
    kube: tuple[FakeKubeServer, client.ApiClient],
) -> None:
    server, api = kube
    core = client.CoreV1Api(api)
    batch = client.BatchV1Api(api)
    server.inject(403, count=2, verb="list", path="/events")
    assert batch.list_namespaced_job("ns-a").items == []  # not an Events list: served
    assert core.list_namespaced_pod("ns-a").items == []
    for namespace in ("ns-a", "ns-b"):
        with pytest.raises(ApiException) as refused:
            core.list_namespaced_event(namespace)
        assert refused.value.status == 403
    assert core.list_namespaced_event("ns-a").items == []  # both uses taken
    assert server.faults.fired == 2


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
