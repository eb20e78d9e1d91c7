"""Fault injection for the fake API server: the next N matching requests, or every matching request
for N seconds, fail on purpose.

A fault answers with an HTTP error (429 with Retry-After, 500, 503, 403...) or delays the request
longer than the client's timeout (the request is then served normally, as a slow real server
would: a create that timed out on the client may still have happened).

Count faults (`count`) are used up one request at a time; window faults (`seconds`) apply to every
matching request until their deadline, like an API server that is down or overloaded for a while.
A window takes precedence over queued count faults while it lasts. Thread-safe: the server's
handler threads take faults concurrently.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any


@dataclass
class Fault:
    kind: str
    """An HTTP status code as a string ("429", "500"...) or "delay"."""
    count: int = 1
    verb: str | None = None
    """Only requests of this verb (create/get/list/patch/delete); None: any verb."""
    retry_after: int = 1
    delay_seconds: float = 0.0
    seconds: float = 0.0
    """More than 0: a window fault, applying to every matching request for this long (count is ignored)."""
    until: float = 0.0
    """time.monotonic() deadline of a window fault, set when it is added."""
    path: str | None = None
    """Only requests whose URL path contains this (e.g. "/events"); None: any path."""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        return cls(
            kind=str(data.get("kind", "500")),
            count=int(data.get("count", 1)),
            verb=data.get("verb"),
            retry_after=int(data.get("retry_after", 1)),
            delay_seconds=float(data.get("delay_seconds", 0.0)),
            seconds=float(data.get("seconds", 0.0)),
            path=data.get("path"),
        )

    def applies_to(self, verb: str, path: str = "") -> bool:
        return self.verb in (None, verb) and (self.path is None or self.path in path)


class Faults:
    def __init__(self) -> None:
        self._queue: list[Fault] = []
        self._windows: list[Fault] = []
        self._lock = threading.Lock()
        self.fired = 0
        self.fired_by_kind: Counter[str] = Counter()

    def add(self, fault: Fault) -> None:
        with self._lock:
            if fault.seconds > 0:
                fault.until = time.monotonic() + fault.seconds
                self._windows.append(fault)
            else:
                self._queue.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self._windows.clear()

    def window_open(self) -> bool:
        """True while some window fault has not reached its deadline."""
        now = time.monotonic()
        with self._lock:
            return any(w.until > now for w in self._windows)

    def take(self, verb: str, path: str = "") -> Fault | None:
        """The open window fault that applies to this verb and path, else the first queued fault that
        does (with one use consumed)."""
        now = time.monotonic()
        with self._lock:
            self._windows = [w for w in self._windows if w.until > now]
            fault = next((w for w in self._windows if w.applies_to(verb, path)), None)
            if fault is None:
                fault = next((f for f in self._queue if f.applies_to(verb, path)), None)
                if fault is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        self._queue.remove(fault)
            if fault is not None:
                self.fired += 1
                self.fired_by_kind[fault.kind] += 1
            return fault
