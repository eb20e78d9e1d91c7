"""`FakeKubeServer`: a small stateful Kubernetes API server over real HTTP, and its test hooks.

Start it in a thread (`start()`, or the `fake_kube` fixture) or as its own process
(`python -m tests.fakekube --port 0`). The same hooks are reachable in Python and over HTTP under
`/_fake/...`, so a benchmark can drive a server running in another process.
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
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.store = Store()
        self.faults = Faults()
        self.events = EventLog(self.store)
        self.controller = AutoController(self.store, events=self.events)
        self.forbidden_namespaces: set[str] = set()
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

    def check_allowed(self, namespace: str) -> None:
        if namespace in self.forbidden_namespaces:
            raise StatusError(
                403,
                "Forbidden",
                f'jobs.batch is forbidden: User "system:serviceaccount:{namespace}:nightwatch" cannot '
                f'access resource "jobs" in API group "batch" in the namespace "{namespace}"',
                {"group": "batch", "kind": "jobs"},
            )

    # -- Python hooks ---------------------------------------------------------------------------
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
    ) -> None:
        """The next `count` requests (of `verb`, if given) answer HTTP `kind` or are delayed; with
        `seconds`, every such request does until that many seconds have passed."""
        self.faults.add(Fault(str(kind), count, verb, retry_after, delay_seconds, seconds))

    def set_controller(
        self,
        mode: str,
        *,
        active_after_ms: float = 50.0,
        complete_after_ms: float = 200.0,
        fail_image: str = "fail",
        pods: bool = False,
        terminate_after_ms: float = 0.0,
    ) -> None:
        self.controller.configure(
            ControllerMode(
                mode,
                active_after_ms,
                complete_after_ms,
                fail_image,
                pods=pods,
                terminate_after_ms=terminate_after_ms,
            )
        )

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
        self.controller.refused_pods.clear()
        self.faults.clear()
        self.forbidden_namespaces.clear()
        self.controller.configure(ControllerMode("off"))
        with self._record_lock:
            self.counters.clear()
            self.requests.clear()

    def reset_counters(self) -> None:
        with self._record_lock:
            self.counters.clear()
            self.requests.clear()

    # -- the same hooks over HTTP ---------------------------------------------------------------
    def control(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        from tests.fakekube.control import handle

        return handle(self, method, path, body or {})
