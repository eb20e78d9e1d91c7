"""Watch semantics of the fake API server, as the real one has them (the Job watch cache).

Every change of a stored Job is journalled with its resourceVersion: ADDED, MODIFIED, DELETED (the
last state, under the deletion's own resourceVersion). A watch (`watch=true` on a list URL) replays
the journal after its `resourceVersion` (none, or "0": from now, after synthetic ADDED events for
every current object, like the real server's "any" semantics), filtered by namespace and label
selector, then streams new events as newline-delimited JSON in HTTP chunks (the events pending
at once share a chunk, up to `CHUNK_BYTES`):

- a version older than the journal keeps (`compact_watch()` forgets it all, `keep` bounds it) is
  answered with one ERROR event whose object is a Status 410 Gone "too old resource version";
- with `allowWatchBookmarks=true` a BOOKMARK (an object with only `metadata.resourceVersion`) every
  `bookmark_seconds` while the stream is idle, and one just before the server's timeout;
- `timeoutSeconds` ends the stream cleanly at the server's timeout;
- `drop_streams()` cuts every open stream at once; `cut_mid_event(n)` makes the next n events go
  out half-written before the connection drops (what a proxy or an apiserver restart does);
- `hold()` ... `release()` journals changes without streaming them, then lets them all go at once: a
  benchmark times a burst from the moment every Job has finished, not from while the fake is still
  finishing them (a real apiserver changes 10,000 Jobs far faster than this fake does).
"""

from __future__ import annotations

import bisect
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from tests.fakekube.selectors import parse_selector

Key = tuple[str, str]


CHUNK_BYTES = 65536
"""Events already waiting go out together, up to this many bytes a write: the real server flushes
only once no event is pending, so a burst reaches a watcher in large writes, not one per event."""


class Event:
    __slots__ = ("labels", "line", "namespace", "rv", "type")

    def __init__(self, rv: int, type_: str, namespace: str, obj: dict[str, Any]) -> None:
        self.rv, self.type, self.namespace = rv, type_, namespace
        self.labels: dict[str, str] = obj["metadata"].get("labels") or {}
        self.line = _line(type_, obj)
        """Serialized once for every watcher, as the real server's watch cache does."""


class WatchJournal:
    def __init__(self, keep: int = 200_000) -> None:
        self.cond = threading.Condition()
        self.keep = keep
        self.events: list[Event] = []
        self.rvs: list[int] = []
        self.floor = 0
        """Versions below this are too old: their events are gone (410)."""
        self.generation = 0
        """Bumped by `drop_streams`: every stream opened under an older one ends at once."""
        self.cut_next = 0
        self.bookmark_seconds = 1.0
        self.opened = 0
        """Watch streams served so far (tests count reconnections)."""
        self.open_by: dict[str, int] = {}
        """Streams open now, by the client's User-Agent (a replica's `nightwatch/<replica id>`)."""
        self.bytes_sent = 0
        self.held_after: int | None = None
        """While held (`hold`): the last version streams may send; later events wait for `release`."""

    def hold(self, now_rv: int) -> None:
        with self.cond:
            self.held_after = now_rv

    def release(self) -> None:
        with self.cond:
            self.held_after = None
            self.cond.notify_all()

    def record(self, rv: int, type_: str, namespace: str, obj: dict[str, Any]) -> None:
        with self.cond:
            if len(self.events) >= 2 * self.keep:
                del self.events[: self.keep], self.rvs[: self.keep]
                self.floor = self.rvs[0]
            self.events.append(Event(rv, type_, namespace, obj))
            self.rvs.append(rv)
            self.cond.notify_all()

    def _after(self, position: int) -> list[Event]:
        start = bisect.bisect_right(self.rvs, position)
        if self.held_after is None:
            return self.events[start:]
        return self.events[start : bisect.bisect_right(self.rvs, self.held_after)]

    def compact(self, now_rv: int) -> None:
        """Forget every event so far: a watch from an older version gets 410 Gone."""
        with self.cond:
            self.events.clear()
            self.rvs.clear()
            self.floor = now_rv + 1

    def drop_streams(self) -> None:
        with self.cond:
            self.generation += 1
            self.cond.notify_all()

    def stream(
        self,
        namespace: str | None,
        selector: str | None,
        since: str | None,
        *,
        bookmarks: bool,
        timeout: float,
        current: Callable[[], tuple[int, list[dict[str, Any]]]],
        client: str = "",
    ) -> Iterator[bytes | None]:
        """The lines of one watch; None means "cut the connection now" (after a half-written event)."""
        with self.cond:
            self.open_by[client] = self.open_by.get(client, 0) + 1
        try:
            yield from self._stream(namespace, selector, since, bookmarks=bookmarks, timeout=timeout, current=current)
        finally:
            with self.cond:
                self.open_by[client] -= 1

    def _stream(
        self,
        namespace: str | None,
        selector: str | None,
        since: str | None,
        *,
        bookmarks: bool,
        timeout: float,
        current: Callable[[], tuple[int, list[dict[str, Any]]]],
    ) -> Iterator[bytes | None]:
        matches = parse_selector(selector)
        deadline = time.monotonic() + timeout
        with self.cond:
            generation = self.generation
            self.opened += 1
        if since in (None, "", "0"):
            # `current` takes the store's lock, which recorders hold while they take ours: never nested.
            position, objects = current()
            for obj in objects:
                if (namespace is None or obj["metadata"]["namespace"] == namespace) and matches(
                    obj["metadata"].get("labels") or {}
                ):
                    yield _line("ADDED", obj)
        else:
            position = int(since)
            with self.cond:
                floor = self.floor
            if position < floor - 1:
                yield _line("ERROR", _gone(position, floor))
                return
        last_sent = time.monotonic()
        while True:
            with self.cond:
                batch = self._after(position)
                while not batch and self.generation == generation:
                    left = deadline - time.monotonic()
                    idle = self.bookmark_seconds - (time.monotonic() - last_sent)
                    if left <= 0 or (bookmarks and idle <= 0):
                        break
                    self.cond.wait(min(left, idle if bookmarks else left))
                    batch = self._after(position)
                if self.generation != generation:
                    yield None
                    return
                cut = False
                if batch and self.cut_next > 0:
                    self.cut_next -= 1
                    cut = True
            if cut:
                whole = batch[0].line
                yield whole[: len(whole) // 2]
                yield None
                return
            pending: list[bytes] = []
            size, sent = 0, False
            for event in batch:
                position = event.rv
                if (namespace is None or event.namespace == namespace) and matches(event.labels):
                    pending.append(event.line)
                    size += len(event.line)
                    if size >= CHUNK_BYTES:
                        yield b"".join(pending)
                        pending, size = [], 0
                    sent = True
            if pending:
                yield b"".join(pending)
            if sent:
                last_sent = time.monotonic()
            now = time.monotonic()
            if now >= deadline:
                if bookmarks:
                    yield _line("BOOKMARK", _bookmark(position))
                return
            if not batch and bookmarks and now - last_sent >= self.bookmark_seconds:
                yield _line("BOOKMARK", _bookmark(position))
                last_sent = now


def _line(type_: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"type": type_, "object": obj}, separators=(",", ":")).encode() + b"\n"


def _bookmark(rv: int) -> dict[str, Any]:
    return {"kind": "Job", "apiVersion": "batch/v1", "metadata": {"resourceVersion": str(rv)}}


def _gone(asked: int, floor: int) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"too old resource version: {asked} ({floor - 1})",
        "reason": "Expired",
        "code": 410,
    }
