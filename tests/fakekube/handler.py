"""The HTTP side of the fake API server: routing, Status bodies, request records and faults.

HTTP/1.1 with keep-alive and an exact Content-Length on every response, and TCP_NODELAY
(`disable_nagle_algorithm`): http.server writes headers and body separately, and without it each
request waits ~40 ms for a delayed ACK, capping the official client at ~23 requests/s.
"""

from __future__ import annotations

import json
import re
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakekube.faults import Fault
from tests.fakekube.store import StatusError, reason_for

if TYPE_CHECKING:
    from tests.fakekube.server import FakeKubeServer

_JOBS = re.compile(r"^/apis/batch/v1/namespaces/([^/]+)/jobs(?:/([^/]+)(/status)?)?$")
_ALL_JOBS = "/apis/batch/v1/jobs"
_PODS = re.compile(r"^/api/v1/namespaces/([^/]+)/pods$")
_POD_LOG = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/log$")
_EVENTS = re.compile(r"^/api/v1/(?:namespaces/([^/]+)/)?events$")
_VERBS = {"POST": "create", "PATCH": "patch", "DELETE": "delete", "PUT": "update"}


class KubeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "fakekube/1"
    fake: FakeKubeServer  # set on a subclass by FakeKubeServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a request log line per call would drown test output

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    # -- plumbing -----------------------------------------------------------------------------
    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise StatusError(400, "BadRequest", "the request body is not valid JSON") from None

    def _send(
        self, code: int, body: Any, headers: dict[str, str] | None = None, *, content_type: str = "application/json"
    ) -> None:
        payload = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (timed out); nothing to tell it

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        path, query = url.path, {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            body = self._read_body()
            if path.startswith("/_fake/"):
                code, result = self.fake.control(method, path, body)
                self._send(code, result)
                return
            verb = self._verb(method, path, query)
            user_agent = self.headers.get("User-Agent", "")
            self.fake.record(verb, method, path, query, user_agent, body)
            hook = self.fake.on_request
            if hook is not None:
                hook(verb, user_agent)
            self.fake.check_authorized(self.headers.get("Authorization"))
            fault = self.fake.faults.take(verb, path)
            if fault is not None and self._fault(fault):
                return
            if verb == "watch" and method == "GET":
                self._watch(path, query)
                return
            log = _POD_LOG.match(path)
            if log and method == "GET":
                namespace = unquote(log.group(1))
                self.fake.check_allowed(namespace, "get", "pods/log", unquote(log.group(2)))
                self.fake.pod_logs.serve(self, namespace, unquote(log.group(2)), query)  # streams itself
                return
            code, result = self._route(method, path, query, body)
            self._send(code, result)
        except StatusError as exc:
            headers = {"Retry-After": str(exc.details.get("retryAfterSeconds", 1))} if exc.code == 429 else None
            self._send(exc.code, exc.body(), headers)

    def _watch(self, path: str, query: dict[str, str]) -> None:
        """A Job watch: chunked newline-delimited events until the server's timeout (see `watch.py`)."""
        match = _JOBS.match(path)
        if match and match.group(2) is None:
            namespace: str | None = unquote(match.group(1))
            self.fake.check_allowed(namespace or "", "watch", "jobs")
        elif path == _ALL_JOBS:
            namespace = None
        else:
            raise StatusError(405, "MethodNotAllowed", f"watch is not served for {path} by this fake")
        # The real server caps a watch at its --min-request-timeout (1800 s) times a random factor.
        timeout = min(float(query.get("timeoutSeconds") or 1800), 1800.0)
        lines = self.fake.store.watch_jobs(
            namespace,
            query.get("labelSelector"),
            query.get("resourceVersion"),
            bookmarks=query.get("allowWatchBookmarks") in ("true", "1"),
            timeout=timeout,
            client=self.headers.get("User-Agent", ""),
        )
        journal = self.fake.store.watch
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            for line in lines:
                if line is None:  # cut: no last chunk, the connection just ends
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
                journal.bytes_sent += len(line)
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        finally:
            lines.close()

    def _fault(self, fault: Fault) -> bool:
        """Apply a fault; True if it answered the request (False: go on and serve it).

        "429" answers as API priority and fairness does (plain text, `Retry-After`); "429-status" as a
        JSON Status with `retryAfterSeconds` (what other 429s, e.g. from the eviction API, look like)."""
        if fault.kind == "delay":
            time.sleep(fault.delay_seconds)
            return False
        if fault.kind == "429":
            # apiserver filters' tooManyRequests(): http.Error, so text/plain and a trailing newline.
            headers = {"Retry-After": str(fault.retry_after), "X-Content-Type-Options": "nosniff"}
            body = b"Too many requests, please try again later.\n"
            self._send(429, body, headers, content_type="text/plain; charset=utf-8")
            return True
        code = int(fault.kind.removesuffix("-status"))
        if code == 429:
            error = StatusError(
                429,
                "TooManyRequests",
                "the server has received too many requests and has asked us to try again later",
                {"retryAfterSeconds": fault.retry_after},
            )
        else:
            error = StatusError(code, reason_for(code), f"injected fault: HTTP {code}")
        raise error

    @staticmethod
    def _verb(method: str, path: str, query: dict[str, str]) -> str:
        if method == "GET":
            match = _JOBS.match(path)
            if (match and match.group(2)) or _POD_LOG.match(path):
                return "get"
            return "watch" if query.get("watch") in ("true", "1") else "list"
        return _VERBS.get(method, method.lower())

    def _route(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        store = self.fake.store
        limit = int(query.get("limit") or 0)
        match = _JOBS.match(path)
        if match:
            namespace, name, status = unquote(match.group(1)), match.group(2), match.group(3)
            self.fake.check_allowed(namespace, self._verb(method, path, query), "jobs", unquote(name or ""))
            if name is None:
                if method == "POST":
                    user_agent = self.headers.get("User-Agent", "")
                    meta = body.get("metadata") if isinstance(body, dict) else None
                    self.fake.admit_namespace(namespace, (meta or {}).get("name") or "")
                    return 201, store.create_job(namespace, body, created_by=user_agent, admit=self.fake.admit_quota)
                if method == "GET":
                    return 200, store.list_jobs(namespace, query.get("labelSelector"), limit, query.get("continue"))
            else:
                name = unquote(name)
                if method == "GET":
                    return 200, store.get_job(namespace, name)
                if method == "PATCH":
                    content_type = self.headers.get("Content-Type", "")
                    return 200, store.patch_job(
                        namespace, name, body, content_type, subresource="status" if status else ""
                    )
                if method == "DELETE" and not status:
                    policy = (body or {}).get("propagationPolicy") or query.get("propagationPolicy")
                    preconditions = (body or {}).get("preconditions")
                    return 200, store.delete_job(namespace, name, policy, preconditions)
        elif path == _ALL_JOBS and method == "GET":
            return 200, store.list_jobs(None, query.get("labelSelector"), limit, query.get("continue"))
        else:
            pods = _PODS.match(path)
            if pods:
                namespace = unquote(pods.group(1))
                self.fake.check_allowed(namespace, self._verb(method, path, query), "pods")
                if method == "GET":
                    return 200, store.list_pods(
                        namespace,
                        query.get("labelSelector"),
                        limit,
                        query.get("continue"),
                        field_selector=query.get("fieldSelector"),
                    )
                if method == "POST":
                    self.fake.check_pod_admitted(namespace, ((body or {}).get("metadata") or {}).get("name", ""))
                    return 201, store.add_pod(namespace, body or {})
            events = _EVENTS.match(path)
            if events and method == "GET":
                namespace = unquote(events.group(1)) if events.group(1) else None
                if namespace is not None:
                    self.fake.check_allowed(namespace)
                return 200, self.fake.events.list(namespace, query.get("fieldSelector"), limit, query.get("continue"))
        raise StatusError(404, "NotFound", f"the server could not find the requested resource ({method} {path})")
