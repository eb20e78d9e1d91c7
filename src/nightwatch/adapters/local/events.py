"""The local runner's change feed: supervisors say when their Job's state changes, sync wakes at once.

A supervisor sends its task id as one datagram to a Unix socket in the state directory
(`events.sock`) when its process starts and when it records a result. The leader's runner binds the
socket while it follows changes; when nobody listens (nightwatch down, a standby) the datagram is
simply lost, and the term's first full pass reads every Job anyway. A supervisor that dies without a
word (SIGKILL, a reboot) is found by the recheck: every `recheck_seconds` the Jobs last seen running
are observed again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path

from nightwatch.domain.model import TaskId

logger = logging.getLogger(__name__)

SOCKET_NAME = "events.sock"
MAX_SOCKET_PATH = 100
"""AF_UNIX paths are limited to ~107 bytes: a longer state directory goes without the socket (rechecks only)."""


def notify(events_path: str, task_id: str) -> None:
    """Tell a listening runner that this task's Job changed; nobody listening is fine. Never raises."""
    if not events_path:
        return
    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(task_id.strip().encode(), events_path)


class LocalChanges:
    def __init__(self, state_dir: Path, *, recheck_seconds: float = 5.0) -> None:
        path = str((state_dir / SOCKET_NAME).absolute())
        self.path = path if len(path.encode()) <= MAX_SOCKET_PATH else ""
        self._recheck = recheck_seconds
        self._lock = threading.Lock()
        self._ids: set[TaskId] = set()
        self._live: set[TaskId] = set()
        self._wake: Callable[[], None] = lambda: None
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._next_recheck = 0.0

    def follow(self, wake: Callable[[], None]) -> None:
        with self._lock:
            self._wake = wake
            if self._sock is not None or not self.path:
                return
            try:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)  # left by a process that is gone (only the leader binds it)
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                sock.bind(self.path)
                sock.settimeout(0.5)
            except OSError as exc:
                logger.warning("local runner: no change socket at %s (%s); rechecking only", self.path, exc)
                return
            self._sock = sock
            self._thread = threading.Thread(target=self._listen, args=(sock,), name="local-changes", daemon=True)
            self._thread.start()

    def _listen(self, sock: socket.socket) -> None:
        while True:
            try:
                data = sock.recv(64)
            except TimeoutError:
                if self._sock is not sock:
                    return
                continue
            except OSError:
                return  # closed by stop()
            text = data.decode(errors="replace").strip()
            if text.isdigit():
                self.add({TaskId(int(text))})

    def add(self, ids: Collection[TaskId]) -> None:
        with self._lock:
            was_empty = not self._ids
            self._ids.update(ids)
            wake = self._wake
        if was_empty and ids:
            wake()

    def seen(self, live: Collection[TaskId], done: Collection[TaskId]) -> None:
        """What an observation found: Jobs still running (rechecked now and then) and finished or gone."""
        with self._lock:
            self._live.update(live)
            self._live.difference_update(done)

    def take(self) -> set[TaskId]:
        now = time.monotonic()
        with self._lock:
            ids, self._ids = self._ids, set()
            if now >= self._next_recheck:
                self._next_recheck = now + self._recheck
                ids |= self._live
        return ids

    def stop(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
            self._wake = lambda: None
            self._ids.clear()
        if sock is not None:
            sock.close()
            with contextlib.suppress(OSError):
                os.unlink(self.path)
