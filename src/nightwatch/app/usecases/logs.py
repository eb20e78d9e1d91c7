"""A task's output: read or follow it live (`ReadTaskLogs`), and keep its tail once it ends (`CaptureLogs`).

Live output comes from the runner (`JobLogs`: the pod of the task's Job, or a local Job's output
file); once a task has ended, the leader's `capture_logs` watcher stores its last `keep_bytes` in
`task_log` (`TaskLogStore`), driven by the outbox entries `apply` wrote with the terminal status, so
sync's hot path does not wait for a log download. A read of an ended attempt prefers what was kept.

Streams are bounded so a few users cannot exhaust a replica: a cap on the bytes of one request, an
idle timeout, and at most `max_streams` follows at once per replica (the next is a RetryableError, 503).
A follow never holds a database connection while it waits: it reads the task (one short
transaction) only between stream segments, and ends once the task is terminal.
"""

from __future__ import annotations

import codecs
import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from nightwatch.domain.errors import LogsUnavailable, PermanentError, RetryableError
from nightwatch.domain.model import Task, TaskId, TaskStatus
from nightwatch.domain.names import job_name_for
from nightwatch.domain.ports import Clock, Fence, JobLogs, JobRef, LeaderStore, TaskLogStore, TaskQueries

logger = logging.getLogger(__name__)


class LogsSettings(BaseModel):
    """Task output: what is kept and how far a stream may go (the `logs:` configuration section)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    keep_bytes: int = Field(default=64 * 1024, ge=0)
    """The tail of each finished attempt's output stored in `task_log` (0 keeps nothing)."""
    max_bytes_per_request: int = Field(default=8 * 1024 * 1024, gt=0)
    """One read or follow sends at most this many bytes (the last ones, for a read)."""
    idle_timeout_seconds: float = Field(default=300.0, gt=0)
    """A follow that got no output for this long ends (the CLI reconnects while the task runs)."""
    max_streams: int = Field(default=64, gt=0)
    """Follows served at once by one replica; the next one is refused with a 503."""
    poll_seconds: float = Field(default=2.0, gt=0)
    """How often a follow looks again for a pod that does not exist yet, or a task that has ended."""
    capture_batch: int = Field(default=10, gt=0)
    """Finished attempts whose output one capture tick (every 2 s) fetches: each costs a pod list and a
    log read, and the pod list shares the runner's rate limit with dispatch and sync, so the default
    keeps the capture to a fifth of the default 50 requests/s."""


class TooManyStreams(RetryableError):
    """This replica already serves `logs.max_streams` follows; try again shortly (or another replica)."""


class BadAttempt(PermanentError):
    """An `--attempt` the task never had."""


def job_name_for_attempt(task: Task, attempt: int) -> str:
    """The name of the Job that ran `attempt` of `task`: the current attempt's is in the row (a Job
    adopted from the original system keeps its own name); any other is `names.job_name_for`. A task
    back to Normal for a retry still holds the failed attempt's Job name, not its new attempt's."""
    if attempt == task.attempt and task.job_name and task.status is not TaskStatus.NORMAL:
        return task.job_name
    return job_name_for(task.name, attempt)


def decode(output: bytes) -> str:
    """Output as text: invalid UTF-8 becomes U+FFFD (never an error), NUL too (PostgreSQL stores none)."""
    return output.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def as_utf8(chunks: Iterator[bytes]) -> Generator[bytes]:
    """Raw output as UTF-8, a character split between two chunks kept whole, invalid bytes (and NUL)
    as U+FFFD; closes `chunks` when done or closed itself."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    try:
        for chunk in chunks:
            text = decoder.decode(chunk)
            if text:
                yield text.replace("\x00", "\ufffd").encode("utf-8")
        rest = decoder.decode(b"", final=True)
        if rest:
            yield rest.encode("utf-8")
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def last_bytes(output: bytes, limit: int) -> tuple[bytes, bool]:
    """The last `limit` bytes (starting at a line or character boundary where one is near), and
    whether anything was cut."""
    if len(output) <= limit:
        return output, False
    cut = output[len(output) - limit :]
    # Do not start in the middle of a UTF-8 sequence: drop continuation bytes at the front.
    start = 0
    while start < min(len(cut), 4) and (cut[start] & 0xC0) == 0x80:
        start += 1
    return cut[start:], True


@dataclass(frozen=True, slots=True)
class LogRead:
    task: Task
    attempt: int
    ref: JobRef


class ReadTaskLogs:
    """`nightwatch logs` and `GET /tasks/{id}/logs`: the output of one attempt of a task."""

    def __init__(
        self,
        queries: TaskQueries,
        job_logs: JobLogs,
        stored: TaskLogStore,
        settings: LogsSettings | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._queries = queries
        self._job_logs = job_logs
        self._stored = stored
        self.settings = settings or LogsSettings()
        self._streams = threading.BoundedSemaphore(self.settings.max_streams)
        self._sleep = sleep
        self._monotonic = monotonic

    def locate(self, task: Task, attempt: int | None) -> LogRead:
        """Which attempt and Job a request means. Raises BadAttempt."""
        wanted = task.attempt if attempt is None else attempt
        if not 1 <= wanted <= task.attempt:
            raise BadAttempt(f"attempt: task {task.id} has attempts 1 to {task.attempt}, not {wanted}")
        ref = JobRef(task.id, task.namespace, job_name_for_attempt(task, wanted), task.started_at)
        return LogRead(task, wanted, ref)

    def read(self, task: Task, *, tail: int | None = None, attempt: int | None = None) -> bytes:
        """The output of one attempt (its last `tail` lines when given), bounded. An attempt that has
        not started, or whose Job is gone with nothing kept, reads as empty."""
        where = self.locate(task, attempt)
        limit = self.settings.max_bytes_per_request
        ended = task.is_terminal or where.attempt < task.attempt
        if ended:
            kept = self._stored.stored(task.id, where.attempt)
            if kept is not None:
                return _tail_lines(kept.output.encode("utf-8"), tail, limit)
        if task.job_name is None and not ended:
            return b""  # not dispatched yet
        try:
            return self._job_logs.read(where.ref, tail_lines=tail, limit_bytes=limit)
        except LogsUnavailable:
            return b""

    def follow(
        self,
        task_id: TaskId,
        *,
        tail: int | None = None,
        attempt: int | None = None,
        offset: int = 0,
        stopped: Callable[[], bool] = lambda: False,
    ) -> Iterator[bytes]:
        """The output, then more as it comes, until the task ends, the byte cap or the idle timeout.
        `offset` (without `tail`): skip that many bytes first (a client reconnecting after a cut).
        `stopped`: asked between chunks and polls; True ends the stream (its reader has gone).

        Reserves one of the replica's stream slots for as long as the iterator lives (close it to
        give the slot back). Raises TooManyStreams, TaskNotFound, BadAttempt before the first chunk."""
        task = self._queries.get(task_id)
        where = self.locate(task, attempt)
        if not self._streams.acquire(blocking=False):
            raise TooManyStreams(f"this replica already serves {self.settings.max_streams} log streams")
        return LogStream(self._follow(task, where, tail, offset, stopped), self._streams.release)

    def _follow(
        self, task: Task, where: LogRead, tail: int | None, offset: int, stopped: Callable[[], bool]
    ) -> Iterator[bytes]:
        budget = self.settings.max_bytes_per_request
        if task.is_terminal or where.attempt < task.attempt:
            if tail is not None or not offset:
                yield self.read(task, tail=tail, attempt=where.attempt)
                return
            # A client that reconnected as the task ended: the rest of the output after `offset`.
            everything = self.read(task, attempt=where.attempt)
            yield everything[offset:] if len(everything) < self.settings.max_bytes_per_request else b""
            return
        sent = offset if tail is None else 0
        lines = tail
        last_output = self._monotonic()
        while budget > 0 and not stopped():
            # A reconnect (the stream was cut, or the runner's read timed out) must not repeat output:
            # from the start, it skips the bytes sent; after a tail, it asks for new lines only.
            skip = sent if tail is None else 0
            try:
                for chunk in self._job_logs.follow(where.ref, tail_lines=lines, limit_bytes=budget + skip):
                    if skip:
                        dropped = min(skip, len(chunk))
                        chunk, skip = chunk[dropped:], skip - dropped
                    if not chunk:
                        continue
                    chunk = chunk[:budget]
                    budget -= len(chunk)
                    sent += len(chunk)
                    last_output = self._monotonic()
                    yield chunk
                    if budget <= 0 or stopped():
                        return
                if tail is not None:
                    lines = 0
            except LogsUnavailable:
                pass  # no pod yet (or between pods): look again shortly
            if stopped():
                return
            current = self._queries.get(task.id)  # one short read: no connection is held while waiting
            if current.is_terminal or current.attempt != where.attempt:
                return
            if self._monotonic() - last_output >= self.settings.idle_timeout_seconds:
                return
            self._sleep(self.settings.poll_seconds)


class LogStream:
    """A follow's chunks, holding one of the replica's stream slots until exhausted or closed (even
    when never iterated, which a generator's own `finally` would not see)."""

    def __init__(self, chunks: Iterator[bytes], release: Callable[[], None]) -> None:
        self._chunks = chunks
        self._release: Callable[[], None] | None = release

    def __iter__(self) -> LogStream:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._chunks)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()
        release, self._release = self._release, None
        if release is not None:
            release()


def _tail_lines(output: bytes, tail: int | None, limit: int) -> bytes:
    if tail is not None:
        lines = output.splitlines(keepends=True)
        output = b"".join(lines[-tail:]) if tail > 0 else b""
    return last_bytes(output, limit)[0]


@dataclass
class CaptureReport:
    captured: int = 0
    empty: int = 0
    """Attempts with no output to keep (the Job was gone already and left nothing)."""


class CaptureLogs:
    """The leader-only watcher that keeps the last `keep_bytes` of each finished attempt's output."""

    def __init__(
        self,
        tasks: LeaderStore,
        job_logs: JobLogs,
        stored: TaskLogStore,
        clock: Clock,
        fence: Fence,
        settings: LogsSettings | None = None,
    ) -> None:
        self._tasks = tasks
        self._job_logs = job_logs
        self._stored = stored
        self._clock = clock
        self._fence = fence
        self._settings = settings or LogsSettings()

    def __call__(self) -> CaptureReport:
        report = CaptureReport()
        keep = self._settings.keep_bytes
        for capture in self._stored.uncaptured(limit=self._settings.capture_batch):
            epoch = self._fence.epoch()
            output = b""
            try:
                task = self._tasks.get(capture.task_id)
                ref = JobRef(task.id, task.namespace, job_name_for_attempt(task, capture.attempt), task.started_at)
                if keep and task.job_name is not None:
                    # One byte more than kept tells a cut output from one that fits exactly.
                    output = self._job_logs.read(ref, tail_lines=None, limit_bytes=keep + 1)
            except LogsUnavailable:
                pass
            except RetryableError as error:
                logger.info("cannot read the output of task %d yet: %s", capture.task_id, error)
                continue
            except PermanentError as error:  # the task row is gone or unreadable: nothing to keep
                logger.info("no output kept for task %d: %s", capture.task_id, error)
            kept, cut = last_bytes(output, keep)
            self._stored.keep(capture, decode(kept), truncated=cut, now=self._clock.now(), epoch=epoch)
            report.captured += 1
            report.empty += not output
        return report
