"""`FakeKubeServer`: a small stateful Kubernetes API server over real HTTP, and its test hooks.

Start it in a thread (`start()`, or the `fake_kube` fixture) or as its own process
(`python -m tests.fakekube --port 0`). The same hooks are reachable in Python and over HTTP under
`/_fake/...`, so a benchmark can drive a server running in another process.

Like a real API server (Kubernetes 1.30-1.34), in the order it checks them: authentication (with a
`token`, anything but `Bearer <token>` is a 401 Status `Unauthorized`; `rotate_token`), RBAC
(`forbidden_namespaces`: 403 `User ... cannot <verb> resource ...`), priority and fairness (an injected
429 is `text/plain` with `Retry-After`), namespace lifecycle admission on create (404 `namespaces "x" not
found` when `namespaces` is set, 403 "being terminated", 403 "not yet ready to handle request"),
decoding and validation of the Job (`validation.py`: 400 for an unreadable quantity, 422 with
`details.kind: "Job"` and a `field` per cause), ResourceQuota admission (`set_job_quota`: 403 "exceeded
quota", checked before the name's existence), then storage (409 AlreadyExists). Lists page with continue
tokens that a malformed value makes a 400 and a compaction (`compact`, `expire_continue_tokens`) a 410
Expired carrying a fresh `metadata.continue`.

Still unlike a real server: no TLS, discovery, watch caches or server-side apply; validation covers
the fields nightwatch sends (see `validation.py`), not the whole pod spec; quotas count Jobs only (not
pods, cpu or memory); namespaces are a set, not objects; priority and fairness never queues a request
(a "delay" fault stands in for that); tokens are plain strings with no expiry of their own.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from typing import Any

from tests.fakekube.controller import AutoController, ControllerMode, job_status
from tests.fakekube.events import EventLog
from tests.fakekube.faults import Fault, Faults
from tests.fakekube.handler import KubeHandler
from tests.fakekube.podlogs import PodLogs
from tests.fakekube.store import StatusError, Store

MAX_RECORDS = 200_000
"""Request records kept (a long benchmark must not grow the fake without bound)."""


@dataclass(frozen=True)
class RequestRecord:
    verb: str
    method: str
    path: str
    query: dict[str, str]
    user_agent: str
    body: Any


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that died or gave up mid-request (a killed replica, a timed-out call) is expected
        in fault tests: no traceback for a reset connection; anything else still prints one."""
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


class FakeKubeServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, token: str | None = None) -> None:
        self.store = Store()
        self.faults = Faults()
        self.events = EventLog(self.store)
        self.pod_logs = PodLogs(self.store)
        """Container output served at pods/{name}/log (see podlogs.py)."""
        self.controller = AutoController(self.store, events=self.events)
        self.forbidden_namespaces: set[str] = set()
        """RBAC: every API request in these namespaces answers 403 `User ... cannot <verb> resource ...`."""
        self.token = token
        """When set, every API request needs `Authorization: Bearer <token>` (else 401), as a real server does."""
        self.namespaces: set[str] | None = None
        """The namespaces that exist; None (the default): every namespace a test uses exists. A create in a
        namespace that does not exist is a 404 `namespaces "x" not found` (NamespaceLifecycle admission)."""
        self.terminating_namespaces: set[str] = set()
        """Namespaces being deleted: a create there is a 403 `... because it is being terminated`."""
        self.admission_not_ready = 0
        """The next N creates answer 403 `not yet ready to handle request` (admission caches not synced yet)."""
        self.job_quotas: dict[str, tuple[str, int]] = {}
        """namespace -> (ResourceQuota name, hard count/jobs.batch): a create over it is a 403 `exceeded quota`."""
        self.counters: Counter[str] = Counter()
        self.requests: list[RequestRecord] = []
        self.on_request: Callable[[str, str], None] | None = None
        """Called with (verb, user agent) by the handler thread of every API request, before it is served:
        a system test's hook to act at a precise moment of a client's work (e.g. kill it mid-sync)."""
        self._record_lock = threading.Lock()
        handler = type("BoundKubeHandler", (KubeHandler,), {"fake": self})
        self.httpd = _QuietServer((host, port), handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeKubeServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), name="fakekube", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
        self.httpd.shutdown()
        self.httpd.server_close()

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    # -- bookkeeping (called by the handler) ----------------------------------------------------
    def record(self, verb: str, method: str, path: str, query: dict[str, str], user_agent: str, body: Any) -> None:
        with self._record_lock:
            self.counters[verb] += 1
            if len(self.requests) < MAX_RECORDS:
                self.requests.append(RequestRecord(verb, method, path, query, user_agent, body))

    def check_allowed(self, namespace: str, verb: str = "get", resource: str = "jobs", name: str = "") -> None:
        """RBAC's 403 for `forbidden_namespaces`, in the authorizer's words (the name only when the URL has one)."""
        if namespace in self.forbidden_namespaces:
            group = "batch" if resource == "jobs" else ""
            qualified = f"{resource}.{group}" if group else resource
            target = f'{qualified} "{name}"' if name else qualified
            raise StatusError(
                403,
                "Forbidden",
                f'{target} is forbidden: User "system:serviceaccount:nightwatch:nightwatch" cannot {verb} '
                f'resource "{resource}" in API group "{group}" in the namespace "{namespace}"',
                {"name": name, "group": group, "kind": resource},
            )

    def check_authorized(self, authorization: str | None) -> None:
        """Authentication: with a `token` configured, anything but `Bearer <token>` is a 401."""
        if self.token is not None and authorization != f"Bearer {self.token}":
            raise StatusError(401, "Unauthorized", "Unauthorized")

    def admit_namespace(self, namespace: str, name: str) -> None:
        """NamespaceLifecycle admission of a create (before validation, like the real plugin)."""
        target = f'jobs.batch "{name}"' if name else "jobs.batch"
        if self.admission_not_ready > 0:
            self.admission_not_ready -= 1
            raise StatusError(
                403,
                "Forbidden",
                f"{target} is forbidden: not yet ready to handle request",
                {"name": name, "group": "batch", "kind": "jobs"},
            )
        if self.namespaces is not None and namespace not in self.namespaces:
            raise StatusError(
                404, "NotFound", f'namespaces "{namespace}" not found', {"name": namespace, "kind": "namespaces"}
            )
        if namespace in self.terminating_namespaces:
            cause = {
                "reason": "NamespaceTerminating",
                "message": f"namespace {namespace} is being terminated",
                "field": "metadata.namespace",
            }
            raise StatusError(
                403,
                "Forbidden",
                f"{target} is forbidden: unable to create new content in namespace {namespace} "
                "because it is being terminated",
                {"name": name, "group": "batch", "kind": "jobs", "causes": [cause]},
            )

    def admit_quota(self, namespace: str, name: str) -> None:
        """ResourceQuota admission of a create (count/jobs.batch counts every Job of the namespace, finished or
        not). Called by the store under its lock, after validation, before the existence check."""
        quota = self.job_quotas.get(namespace)
        if quota is None:
            return
        quota_name, hard = quota
        used = sum(1 for ns, _ in self.store.jobs if ns == namespace)
        if used + 1 > hard:
            key = "count/jobs.batch"
            target = f'jobs.batch "{name}"' if name else "jobs.batch"
            raise StatusError(
                403,
                "Forbidden",
                f"{target} is forbidden: exceeded quota: {quota_name}, requested: {key}=1, used: {key}={used}, "
                f"limited: {key}={hard}",
                {"name": name, "group": "batch", "kind": "jobs"},
            )

    # -- Python hooks ---------------------------------------------------------------------------
    def rotate_token(self, token: str) -> None:
        """A new bearer token is the only valid one from now on (the old one expired, as bound
        service-account tokens do; the kubelet writes the new one to the pod's token file)."""
        self.token = token

    def set_job_quota(self, namespace: str, hard: int | None, *, name: str = "jobs-quota") -> None:
        """A ResourceQuota `count/jobs.batch: hard` in `namespace` (None removes it)."""
        if hard is None:
            self.job_quotas.pop(namespace, None)
        else:
            self.job_quotas[namespace] = (name, hard)

    def compact(self) -> None:
        """etcd compaction: every continue token issued so far answers 410 Expired."""
        self.store.compact()

    def expire_continue_tokens(self, count: int = 1) -> None:
        """The next `count` lists that carry a continue token find it expired (compacted just before)."""
        with self.store.lock:
            self.store.compact_before_continues = count

    def set_job_state(self, namespace: str, name: str, state: str, *, reason: str = "", message: str = "") -> None:
        """Set a Job's status as the Job controller would: pending, active, succeeded or failed."""
        self.store.set_job_status(namespace, name, job_status(state, reason=reason, message=message))

    def set_job_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.store.set_job_status(namespace, name, status)

    def add_pod(self, namespace: str, pod: dict[str, Any]) -> dict[str, Any]:
        return self.store.add_pod(namespace, pod)

    def inject(
        self,
        kind: str | int,
        *,
        count: int = 1,
        verb: str | None = None,
        retry_after: int = 1,
        delay_seconds: float = 0.0,
        seconds: float = 0.0,
        path: str | None = None,
    ) -> None:
        """The next `count` requests (of `verb`, and to a URL path containing `path`, if given) answer
        HTTP `kind` or are delayed; with `seconds`, every such request does until that many seconds
        have passed."""
        self.faults.add(Fault(str(kind), count, verb, retry_after, delay_seconds, seconds, path=path))

    def set_controller(
        self,
        mode: str,
        *,
        active_after_ms: float = 50.0,
        complete_after_ms: float = 200.0,
        fail_image: str = "fail",
        collect_finished: bool = False,
        pods: bool = False,
        terminate_after_ms: float = 0.0,
    ) -> None:
        """`collect_finished`: also run the TTL-after-finished controller (see `ControllerMode`)."""
        self.controller.configure(
            ControllerMode(
                mode,
                active_after_ms,
                complete_after_ms,
                fail_image,
                collect_finished=collect_finished,
                pods=pods,
                terminate_after_ms=terminate_after_ms,
            )
        )

    def delete_job(self, namespace: str, name: str, propagation: str | None = "Background") -> dict[str, Any]:
        """DELETE a Job as a user (`kubectl delete job`) would: finalizers are honoured."""
        return self.store.delete_job(namespace, name, propagation)

    def remove_finalizers(self, namespace: str, name: str) -> None:
        """Empty a Job's `metadata.finalizers`, as `kubectl patch --type merge -p '{"metadata":{"finalizers":null}}'`."""
        self.store.patch_job(namespace, name, {"metadata": {"finalizers": None}}, "application/merge-patch+json")

    def refuse_pods(self, namespace: str, reason: str | None) -> None:
        """Admission in `namespace` lets Jobs in and refuses every pod with `reason` (e.g. `violates
        PodSecurity "restricted:latest": ...` or `exceeded quota: ...`); None admits pods again.
        The Job controller then records FailedCreate Events (see controller.py)."""
        with self.store.lock:
            if reason is None:
                self.controller.refused_pods.pop(namespace, None)
            else:
                self.controller.refused_pods[namespace] = reason

    def check_pod_admitted(self, namespace: str, name: str) -> None:
        reason = self.controller.refused_pods.get(namespace)
        if reason is not None:
            raise StatusError(403, "Forbidden", f'pods "{name}" is forbidden: {reason}', {"kind": "pods", "name": name})

    def job(self, namespace: str, name: str) -> dict[str, Any]:
        return self.store.get_job(namespace, name)

    def created_by(self, namespace: str, name: str) -> str:
        with self.store.lock:
            return self.store.created_by[(namespace, name)]

    def created_bodies(self) -> list[Any]:
        """The bodies of every create request, exactly as received."""
        with self._record_lock:
            return [r.body for r in self.requests if r.verb == "create"]

    def reset(self) -> None:
        """Forget every object, record, counter and fault; the controller goes off."""
        self.store.reset()
        self.events.reset()
        self.pod_logs.reset()
        self.controller.refused_pods.clear()
        self.faults.clear()
        self.forbidden_namespaces.clear()
        self.namespaces = None
        self.terminating_namespaces.clear()
        self.admission_not_ready = 0
        self.job_quotas.clear()
        self.controller.configure(ControllerMode("off"))
        with self._record_lock:
            self.counters.clear()
            self.requests.clear()

    def drop_watches(self) -> None:
        """Cut every open watch stream at once (an apiserver restart, a proxy's idle cut)."""
        self.store.watch.drop_streams()

    def compact_watch(self) -> None:
        """Forget the watch history: a watch from any version seen so far answers 410 Gone."""
        self.store.compact_watch()

    def cut_next_watch_events(self, count: int) -> None:
        """The next `count` watch events go out half-written, then their stream is cut."""
        with self.store.watch.cond:
            self.store.watch.cut_next = count

    def reset_counters(self) -> None:
        with self._record_lock:
            self.counters.clear()
            self.requests.clear()

    # -- the same hooks over HTTP ---------------------------------------------------------------
    def control(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        from tests.fakekube.control import handle

        return handle(self, method, path, body or {})
