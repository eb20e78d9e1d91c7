"""Container logs in the fake API server: `GET /api/v1/namespaces/{ns}/pods/{name}/log`.

What the kubelet serves through the API server, as far as nightwatch reads it:

- `container` (a pod with several containers needs it; one the pod does not have is a 400),
  `tailLines` (the last N lines), `limitBytes` (the first N bytes of what would be sent),
  `follow=true` (the output so far, then more as it is written, until the container ends; chunked).
- A pod that does not exist is a 404 `pods "x" not found`; a container that has not started yet
  (no output was ever written) is a 400 `container "task" in pod "x" is waiting to start: ContainerCreating`.
- A follow may be cut mid-way (`cut`): the connection drops without the chunked terminator, as when
  the kubelet or the API server restarts.

Tests write a container's output with `write`, end it with `end`, and cut live follows with `cut`.
"""

from __future__ import annotations

import threading
from functools import partial
from typing import TYPE_CHECKING, Any

from tests.fakekube.store import StatusError

if TYPE_CHECKING:
    from tests.fakekube.handler import KubeHandler
    from tests.fakekube.store import Store

Key = tuple[str, str, str]


class PodLogs:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._output: dict[Key, bytearray] = {}
        self._ended: set[Key] = set()
        self._cuts: dict[tuple[str, str], int] = {}
        self._cond = threading.Condition()
        self.follows_open = 0
        self._ticker_stop = threading.Event()
        """Follow streams being served right now (a test checks none is left behind)."""

    # -- test hooks ---------------------------------------------------------------------------
    def write(self, namespace: str, pod: str, data: bytes, container: str = "task") -> None:
        with self._cond:
            self._output.setdefault((namespace, pod, container), bytearray()).extend(data)
            self._cond.notify_all()

    def end(self, namespace: str, pod: str, container: str = "task") -> None:
        """The container terminated: follows send what is left and end."""
        with self._cond:
            self._output.setdefault((namespace, pod, container), bytearray())
            self._ended.add((namespace, pod, container))
            self._cond.notify_all()

    def cut(self, namespace: str, pod: str) -> None:
        """Drop every live follow of this pod's logs mid-way (no chunked terminator)."""
        with self._cond:
            self._cuts[(namespace, pod)] = self._cuts.get((namespace, pod), 0) + 1
            self._cond.notify_all()

    def tick(self, namespace: str, pods: list[str], every_seconds: float, container: str = "task") -> None:
        """Write `line <n>` to each of `pods` every `every_seconds`, on a thread of the fake's own (so a
        benchmark's writer costs the measured process nothing), until `reset`."""
        stop = self._ticker_stop

        def run() -> None:
            n = 0
            while not stop.wait(every_seconds):
                for pod in pods:
                    self.write(namespace, pod, f"line {n}\n".encode(), container)
                n += 1

        threading.Thread(target=run, name="podlogs-ticker", daemon=True).start()

    def reset(self) -> None:
        self._ticker_stop.set()
        self._ticker_stop = threading.Event()
        with self._cond:
            self._output.clear()
            self._ended.clear()
            self._cuts.clear()
            self._cond.notify_all()

    # -- serving ------------------------------------------------------------------------------
    def serve(self, handler: KubeHandler, namespace: str, pod_name: str, query: dict[str, str]) -> None:
        container = self._container(namespace, pod_name, query.get("container"))
        key = (namespace, pod_name, container)
        limit = int(query["limitBytes"]) if query.get("limitBytes") else None
        with self._cond:
            if key not in self._output:
                raise StatusError(
                    400,
                    "BadRequest",
                    f'container "{container}" in pod "{pod_name}" is waiting to start: ContainerCreating',
                )
            data = bytes(self._output[key])
            cuts = self._cuts.get((namespace, pod_name), 0)
        if query.get("tailLines") not in (None, ""):
            lines = data.splitlines(keepends=True)
            tail = int(query["tailLines"])
            data = b"".join(lines[-tail:]) if tail > 0 else b""
        offset = len(self._output[key])
        if limit is not None:
            data = data[:limit]
        if query.get("follow") not in ("true", "1"):
            handler.send_response(200)
            handler.send_header("Content-Type", "text/plain")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            return
        self._follow(handler, key, data, offset, limit, cuts)

    def _follow(self, handler: KubeHandler, key: Key, first: bytes, offset: int, limit: int | None, cuts: int) -> None:
        sent = 0
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        with self._cond:
            self.follows_open += 1
        try:
            if first:
                _chunk(handler, first)
                sent += len(first)
            while limit is None or sent < limit:
                with self._cond:
                    self._cond.wait_for(partial(self._moved, key, offset, cuts), timeout=30)
                    if self._cuts.get(key[:2], 0) != cuts:
                        handler.close_connection = True
                        handler.wfile.flush()
                        handler.connection.shutdown(2)  # cut: no terminating chunk
                        return
                    more = bytes(self._output[key][offset:])
                    ended = key in self._ended
                offset += len(more)
                if limit is not None:
                    more = more[: limit - sent]
                if more:
                    _chunk(handler, more)
                    sent += len(more)
                if ended and not more:
                    break
            handler.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, OSError):
            handler.close_connection = True  # the client went away
        finally:
            with self._cond:
                self.follows_open -= 1

    def _moved(self, key: Key, offset: int, cuts: int) -> bool:
        """New output, the container's end, or a cut (call with the condition held)."""
        return len(self._output[key]) > offset or key in self._ended or self._cuts.get(key[:2], 0) != cuts

    def _container(self, namespace: str, pod_name: str, wanted: str | None) -> str:
        with self._store.lock:
            pod: dict[str, Any] | None = self._store.pods.get((namespace, pod_name))
            if pod is None:
                raise StatusError(404, "NotFound", f'pods "{pod_name}" not found', {"kind": "pods", "name": pod_name})
            names = [c.get("name") for c in ((pod.get("spec") or {}).get("containers") or [])]
        if wanted is None:
            if len(names) > 1:
                raise StatusError(
                    400,
                    "BadRequest",
                    f"a container name must be specified for pod {pod_name}, choose one of: {names}",
                )
            return str(names[0]) if names else "task"
        if names and wanted not in names:
            raise StatusError(400, "BadRequest", f"container {wanted} is not valid for pod {pod_name}")
        return wanted


def _chunk(handler: KubeHandler, data: bytes) -> None:
    handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    handler.wfile.flush()
