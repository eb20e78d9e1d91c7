"""A webhook receiver for tests: a real HTTP server on a free port that records what it is sent.

Each path has a behaviour: answer 200, answer 500 for the first N requests, or hang (never answer
until the test ends). Every request is recorded with its body, headers and whether its signature
checks out against the path's secret, so tests assert on what a real receiver would see.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    signed_ok: bool | None
    """None when the path has no secret; else whether X-Nightwatch-Signature matched."""
    at: float = field(default_factory=time.monotonic)


def verify(body: bytes, header: str | None, secret: str) -> bool:
    """The check docs/notifications.md tells receivers to do."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return header is not None and hmac.compare_digest(expected, header)


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.failures_left: dict[str, int] = {}
        self.hanging: set[str] = set()
        self.secrets: dict[str, str] = {}
        self._released = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                secret = receiver.secrets.get(self.path)
                signed = verify(raw, self.headers.get("X-Nightwatch-Signature"), secret) if secret else None
                with receiver._lock:
                    receiver.received.append(Received(self.path, json.loads(raw), dict(self.headers), signed))
                    failing = receiver.failures_left.get(self.path, 0)
                    if failing:
                        receiver.failures_left[self.path] = failing - 1
                if self.path in receiver.hanging:
                    receiver._released.wait(30)
                    return
                code = 500 if failing else 200
                payload = b"boom" if failing else b"ok"
                self.send_response(code)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._released.set()
        self.server.shutdown()
        self.server.server_close()
