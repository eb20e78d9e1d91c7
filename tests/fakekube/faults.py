"""Fault injection for the fake API server: the next N matching requests fail on purpose.

A fault answers with an HTTP error (429 with Retry-After, 500, 503, 403...) or delays the request
longer than the client's timeout (the request is then served normally, as a slow real server
would: a create that timed out on the client may still have happened).
"""

from __future__ import annotations

import threading
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

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        return cls(
            kind=str(data.get("kind", "500")),
            count=int(data.get("count", 1)),
            verb=data.get("verb"),
            retry_after=int(data.get("retry_after", 1)),
            delay_seconds=float(data.get("delay_seconds", 0.0)),
        )


class Faults:
    def __init__(self) -> None:
        self._queue: list[Fault] = []
        self._lock = threading.Lock()
        self.fired = 0

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._queue.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def take(self, verb: str) -> Fault | None:
        """The first queued fault that applies to this verb, with one use consumed."""
        with self._lock:
            for fault in self._queue:
                if fault.verb in (None, verb):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._queue.remove(fault)
                    self.fired += 1
                    return fault
            return None
