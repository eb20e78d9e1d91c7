"""The Job informer: per namespace, a paginated list then a watch, into a small cache of what sync needs.

Polling listed every in-flight Job every tick. An informer lists a namespace's nightwatch Jobs once
(label selector, `limit`/`continue`), then watches from the list's resourceVersion with bookmarks and
a server-side timeout, resuming from the last version it saw (an event's or a bookmark's) when a stream
ends or is cut. A `410 Gone` (too old resource version), as an ERROR event or a status, relists; the
relist compares with the cache, so a Job deleted meanwhile is reported too.

Events are decoded here (raw JSON over the ApiClient, `_preload_content=False`) into a trimmed Job:
the fields observation reads (name, uid, task-id label, start-timeout annotation, creation and
deletion time, finalizers, status counts and conditions), never the whole object. A Job whose trimmed
form changed queues its task id; ids coalesce until `take()`, and the first one queued calls `wake`.

Jobs still waiting for a pod (observed Pending) are queued again `recheck_seconds` after they began
waiting, then after twice as long each time, up to `MAX_RECHECK_SECONDS` (and a tenth of the Job's
start timeout, so the timeout fires at most that late): their diagnosis and start timeout depend on
time, not on events. Each Job keeps its own schedule, so Jobs created a moment ago are not read again
with the rest (one shared clock re-read every waiting row at once, most of them seconds old: 14,000
reads while dispatching 10,000 Jobs), and a backlog waiting for nodes costs a read a minute per Job,
not one every 5 s.

`stop()` cuts every stream at once (shutting the sockets down) and forgets what was queued: a
replica that steps down writes nothing it heard while it led.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator
from typing import Any

import orjson
import urllib3
from kubernetes.client.exceptions import ApiException

from nightwatch.adapters.kubernetes.api import KubeApi
from nightwatch.adapters.kubernetes.finalizer import is_dying, is_finished
from nightwatch.adapters.kubernetes.jobbody import (
    ATTEMPT_LABEL,
    KUEUE_COUNTED_LABEL,
    KUEUE_QUEUE_LABEL,
    MANAGED_SELECTOR,
    START_TIMEOUT_ANNOTATION,
    TASK_ID_LABEL,
)
from nightwatch.adapters.kubernetes.status import observe_job, start_timeout_of
from nightwatch.domain.errors import InvalidTaskSpec, RetryableError
from nightwatch.domain.model import TaskId
from nightwatch.domain.names import check_dns1123_label
from nightwatch.domain.observation import JobPhase

logger = logging.getLogger(__name__)

JOBS_PATH = "/apis/batch/v1/namespaces/{namespace}/jobs"
_STATUS_KEYS = ("active", "ready", "succeeded", "failed", "terminating", "startTime")
_METADATA_KEYS = ("name", "uid", "creationTimestamp", "deletionTimestamp", "finalizers")
_LABEL_KEYS = (TASK_ID_LABEL, ATTEMPT_LABEL, KUEUE_QUEUE_LABEL, KUEUE_COUNTED_LABEL)
"""The labels observation reads: the task, the attempt (adoption, the failed attempt's pods), Kueue's queue
and whether a Kueue-held Job still counts against nightwatch's limits."""
_CONDITION_KEYS = ("type", "status", "reason", "message")
MAX_BACKOFF_SECONDS = 8.0
"""The longest pause between failed watch requests: the cache is behind while the watch is down (misses
are read by name, changes wait), so after an outage it catches up within this; one request per pause."""
MAX_RECHECK_SECONDS = 60.0
"""The longest a Job waiting for a pod goes without its task being observed again."""
RELIST_WITHOUT_WATCH_SECONDS = 2.0
"""A watch answered 403 (RBAC without `watch` on jobs): the informer relists this often instead, so its
cache never goes stale (the polling method's cost, in that namespace only)."""


class Gone(Exception):
    """The watch's resourceVersion is older than the server keeps (410): relist."""


class WatchForbidden(Exception):
    """The watch itself answered 403 (the list did not): relist now and then instead."""


def trim(job: dict[str, Any]) -> dict[str, Any]:
    """The part of a raw Job that observation reads, in the Job's own shape (so `status.py`,
    `finalizer.py` and `diagnosis.py` read it unchanged). Excludes resourceVersion, so an update that
    touched nothing of this (a label, the spec) compares equal."""
    meta = job.get("metadata") or {}
    status = job.get("status") or {}
    trimmed_meta: dict[str, Any] = {k: meta[k] for k in _METADATA_KEYS if meta.get(k) is not None}
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k in _LABEL_KEYS}
    if labels:
        trimmed_meta["labels"] = labels
    timeout = (meta.get("annotations") or {}).get(START_TIMEOUT_ANNOTATION)
    if timeout is not None:
        trimmed_meta["annotations"] = {START_TIMEOUT_ANNOTATION: timeout}
    trimmed_status: dict[str, Any] = {k: status[k] for k in _STATUS_KEYS if status.get(k) is not None}
    conditions = [
        {k: c[k] for k in _CONDITION_KEYS if c.get(k) is not None}
        for c in status.get("conditions") or ()
        if isinstance(c, dict)
    ]
    if conditions:
        trimmed_status["conditions"] = conditions
    trimmed: dict[str, Any] = {"metadata": trimmed_meta, "status": trimmed_status}
    if (job.get("spec") or {}).get("suspend") is True:
        trimmed["spec"] = {"suspend": True}  # a Kueue-held Job is told from a suspended one by it
    return trimmed


def _watchable(namespace: str) -> bool:
    """A namespace a Job can be in: a row written by hand with "" or "a/b" names none (observe says so)."""
    try:
        check_dns1123_label(namespace, "namespace")
    except InvalidTaskSpec:
        return False
    return True


def _seen_by_sync(job: dict[str, Any] | None, *, uid: bool = True) -> Any:
    """What of a trimmed Job can change its task's observation: everything but the finalizers (nightwatch's
    own release patch changes only those, and must not queue every task it just finished again)."""
    if job is None:
        return None
    meta = job["metadata"]
    labels, annotations = meta.get("labels"), meta.get("annotations")
    return (
        job["status"],
        meta.get("uid") if uid else None,
        meta.get("deletionTimestamp"),
        labels,
        annotations,
        job.get("spec"),
    )


def _changed_for_sync(before: dict[str, Any] | None, after: dict[str, Any] | None) -> bool:
    # A Job assumed from our own create has no uid yet: its first event from the watch adds one, which
    # alone is no news (else every launched task is read twice).
    assumed = before is not None and after is not None and "uid" not in before["metadata"]
    return bool(_seen_by_sync(before, uid=not assumed) != _seen_by_sync(after, uid=not assumed))


def _task_id(job: dict[str, Any]) -> TaskId | None:
    value = ((job.get("metadata") or {}).get("labels") or {}).get(TASK_ID_LABEL)
    return TaskId(int(value)) if isinstance(value, str) and value.isdigit() else None


def _waiting(job: dict[str, Any]) -> bool:
    """Observed Pending (no pod running yet): its diagnosis and start timeout move with time."""
    return not is_finished(job) and not is_dying(job) and observe_job(job).phase is JobPhase.PENDING


class ChangeQueue:
    """Task ids whose Job changed, coalesced; `wake` is called when the queue stops being empty."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: set[TaskId] = set()
        self.wake: Callable[[], None] = lambda: None

    def add(self, ids: Collection[TaskId]) -> None:
        if not ids:
            return
        with self._lock:
            was_empty = not self._ids
            self._ids.update(ids)
        if was_empty:
            self.wake()

    def take(self) -> set[TaskId]:
        with self._lock:
            ids, self._ids = self._ids, set()
        return ids

    def has_changes(self) -> bool:
        with self._lock:
            return bool(self._ids)

    def clear(self) -> None:
        with self._lock:
            self._ids.clear()


class NamespaceInformer:
    """List + watch of one namespace's nightwatch Jobs, on a daemon thread, into `jobs`."""

    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        queue: ChangeQueue,
        *,
        watch_timeout: int,
        connect_timeout: float,
        recheck_seconds: float = 5.0,
        start_timeout: int = 0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep_jitter: Callable[[], float] = lambda: 1.0,
    ) -> None:
        """`start_timeout`: the runner's default (a Job's annotation overrides it), which bounds the
        recheck interval of its waiting Jobs."""
        self.namespace = namespace
        self._recheck = recheck_seconds
        self._start_timeout = start_timeout
        self._monotonic = monotonic
        self._api = api
        self._queue = queue
        self._watch_timeout = watch_timeout
        self._connect_timeout = connect_timeout
        self._jitter = sleep_jitter
        self._lock = threading.Lock()
        self._jobs: dict[str, dict[str, Any]] = {}
        self._waiting: dict[str, tuple[float, float]] = {}
        """Name -> (monotonic time its task is next queued, the interval after that), of the Jobs
        observed waiting for a pod."""
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._response: Any = None
        self.resource_version: str | None = None
        self.lists = 0
        self.watches = 0
        self._thread = threading.Thread(target=self._run, name=f"informer-{namespace}", daemon=True)

    # -- what the runner reads -------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    def wait_synced(self, timeout: float) -> bool:
        return self._synced.wait(timeout)

    def snapshot(self) -> dict[str, dict[str, Any]] | None:
        """name -> trimmed Job, or None before the first list finished (the caller lists itself)."""
        if not self._synced.is_set():
            return None
        with self._lock:
            return dict(self._jobs)

    def assume(self, job: dict[str, Any]) -> None:
        """A Job this replica just created or adopted (the API server's answer), cached unless the watch
        already brought it: sync observes a launched task at once, often before its ADDED event, and
        a Job the cache lacks costs a GET. The watch's own version of it replaces this one."""
        name = (job.get("metadata") or {}).get("name")
        if not isinstance(name, str):
            return
        with self._lock:
            if name in self._jobs:
                return
            self._jobs[name] = trimmed = trim(job)
            self._wait_or_not(name, trimmed)

    def forget(self, name: str) -> None:
        """Drop an assumption whose create was not accepted; a Job the watch or a list brought stays."""
        with self._lock:
            job = self._jobs.get(name)
            if job is not None and "uid" not in job["metadata"]:
                del self._jobs[name]
                self._waiting.pop(name, None)

    def due_task_ids(self) -> set[TaskId]:
        """The tasks of the waiting Jobs whose recheck is due, each due again after its next interval."""
        now = self._monotonic()
        with self._lock:
            due = [(n, interval) for n, (at, interval) in self._waiting.items() if at <= now]
            for name, interval in due:
                self._waiting[name] = (now + interval, self._next_interval(self._jobs[name], interval))
            return {t for n, _ in due if (t := _task_id(self._jobs[n])) is not None}

    def _next_interval(self, job: dict[str, Any], interval: float) -> float:
        cap = MAX_RECHECK_SECONDS
        timeout = start_timeout_of(job, self._start_timeout)
        if timeout:
            cap = min(cap, timeout / 10)
        return max(self._recheck, min(2 * interval, cap))

    def _wait_or_not(self, name: str, job: dict[str, Any]) -> None:
        """Under the lock: a Job that began waiting is rechecked from now on; one that stopped is not."""
        if not _waiting(job):
            self._waiting.pop(name, None)
        elif name not in self._waiting:
            self._waiting[name] = (self._monotonic() + self._recheck, self._next_interval(job, self._recheck))

    def stop(self) -> None:
        """End the watch at once: the socket is shut down under the reading thread."""
        self._stop.set()
        response = self._response
        if response is not None:
            try:
                response.shutdown()
            except Exception:  # shutting a socket that is already gone: nothing left to stop
                logger.debug("informer %s: closing the watch stream", self.namespace, exc_info=True)

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    # -- the loop ----------------------------------------------------------------------------------
    def _run(self) -> None:
        failures = 0
        forbidden = False
        while not self._stop.is_set():
            try:
                if self.resource_version is None:
                    self._relist()
                self._watch()
                failures = 0
            except Gone:
                logger.info(
                    "informer %s: resourceVersion %s is too old; relisting", self.namespace, self.resource_version
                )
                self.resource_version = None
            except WatchForbidden as exc:
                if not forbidden:
                    logger.error(
                        "watching Jobs forbidden in namespace %s (%s): grant `watch` on jobs to nightwatch; "
                        "relisting every %.0f s meanwhile",
                        self.namespace,
                        exc,
                        RELIST_WITHOUT_WATCH_SECONDS,
                    )
                forbidden = True
                self._stop.wait(RELIST_WITHOUT_WATCH_SECONDS)
                self.resource_version = None
            except (RetryableError, ApiException, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
                if self._stop.is_set():
                    break
                failures += 1
                delay = min(MAX_BACKOFF_SECONDS, 0.1 * 2 ** min(failures, 10)) * self._jitter()
                logger.warning(
                    "informer %s: %s; resuming from resourceVersion %s in %.1f s",
                    self.namespace,
                    str(exc) or type(exc).__name__,
                    self.resource_version,
                    delay,
                )
                self._stop.wait(delay)
            except Exception:  # the thread must not die silently: relist after a pause
                logger.exception("informer %s failed unexpectedly; relisting", self.namespace)
                self.resource_version = None
                self._stop.wait(1.0)

    def _relist(self) -> None:
        versions: list[str] = []
        fresh = {}
        for job in self._api.list(self.namespace, JOBS_PATH, "Jobs", versions=versions):
            name = (job.get("metadata") or {}).get("name")
            if isinstance(name, str):
                fresh[name] = trim(job)
        self.lists += 1
        changed: set[TaskId] = set()
        with self._lock:
            old = self._jobs
            for name in old.keys() | fresh.keys():
                before, after = old.get(name), fresh.get(name)
                if _changed_for_sync(before, after):
                    changed.update(t for t in (_task_id(before or {}), _task_id(after or {})) if t is not None)
            self._jobs = fresh
            waiting, self._waiting = self._waiting, {}
            for name, job in fresh.items():
                if name in waiting:
                    self._waiting[name] = waiting[name]  # its schedule goes on
                self._wait_or_not(name, job)
        self.resource_version = versions[0] if versions else None
        self._synced.set()
        self._queue.add(changed)

    def _watch(self) -> None:
        query: list[tuple[str, Any]] = [
            ("labelSelector", MANAGED_SELECTOR),
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", self._watch_timeout),
        ]
        if self.resource_version:
            query.append(("resourceVersion", self.resource_version))
        self._api.calls.throttle()
        try:
            response = self._api.request(
                "GET",
                JOBS_PATH,
                {"namespace": self.namespace},
                query=query,
                # The read timeout outlasts the server's: a silent, dead connection still ends.
                _request_timeout=(self._connect_timeout, self._watch_timeout + 30.0),
            )
        except ApiException as exc:
            if exc.status == 410:
                raise Gone() from None
            if exc.status == 403:
                raise WatchForbidden(str(exc.reason or "Forbidden")) from None
            raise
        self._response = response
        self.watches += 1
        try:
            if self._stop.is_set():
                return
            for event in _lines(response):
                self._apply(event)
                if self._stop.is_set():
                    return
        finally:
            self._response = None
            response.release_conn()

    def _apply(self, event: dict[str, Any]) -> None:
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone()
            raise RetryableError(f"watch error: {obj.get('code')} {obj.get('message')}")
        meta = obj.get("metadata") or {}
        version = meta.get("resourceVersion")
        if kind == "BOOKMARK":
            if isinstance(version, str) and version:
                self.resource_version = version
            return
        name = meta.get("name")
        if not isinstance(name, str):
            return
        changed: set[TaskId] = set()
        with self._lock:
            before = self._jobs.get(name)
            if kind == "DELETED":
                self._jobs.pop(name, None)
                self._waiting.pop(name, None)
                after: dict[str, Any] | None = None
            elif kind in ("ADDED", "MODIFIED"):
                after = trim(obj)
                if after != before:
                    self._jobs[name] = after
                    self._wait_or_not(name, after)
            else:
                return
            if _changed_for_sync(before, after):
                changed.update(t for t in (_task_id(before or {}), _task_id(after or obj)) if t is not None)
        if isinstance(version, str) and version:
            self.resource_version = version
        self._queue.add(changed)


def _lines(response: Any) -> Iterator[dict[str, Any]]:
    """The events of a watch stream. A line cut short by the connection ending is dropped, and since
    the resourceVersion only moves on whole events, the next watch resumes before it."""
    buffer = b""
    for chunk in response.stream(65536, decode_content=True):
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                event = orjson.loads(line)
                if isinstance(event, dict):
                    yield event


class Informers:
    """One `NamespaceInformer` per followed namespace, sharing one `ChangeQueue`: the runner's change feed.

    Only between `follow()` and `stop()` (the leader's term) does anything run; `ensure()` (a launch in
    a namespace not followed yet) starts one only then.
    """

    def __init__(
        self,
        api: KubeApi,
        *,
        watch_timeout: int,
        connect_timeout: float,
        recheck_seconds: float,
        start_timeout: int = 0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._start_timeout = start_timeout
        self._watch_timeout = watch_timeout
        self._connect_timeout = connect_timeout
        self._recheck = recheck_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._informers: dict[str, NamespaceInformer] = {}
        self._active = False
        self._next_scan = 0.0
        self.queue = ChangeQueue()

    def follow(self, namespaces: Collection[str], wake: Callable[[], None]) -> None:
        """Watch exactly these namespaces (start the missing ones, stop the others)."""
        wanted = {ns for ns in namespaces if _watchable(ns)}
        with self._lock:
            self._active = True
            self.queue.wake = wake
            gone = [self._informers.pop(ns) for ns in list(self._informers) if ns not in wanted]
            for namespace in wanted - self._informers.keys():
                self._start(namespace)
        for informer in gone:
            informer.stop()
            logger.info("not watching Jobs in %s any more: no task in flight there", informer.namespace)
        if self.queue.has_changes():
            wake()  # queued before this wake was set (a launch): `add` woke nobody

    def assume(self, namespace: str, job: dict[str, Any]) -> None:
        """See `NamespaceInformer.assume` (nothing when `namespace` is not followed)."""
        with self._lock:
            informer = self._informers.get(namespace)
        if informer is not None:
            informer.assume(job)

    def forget(self, namespace: str, name: str) -> None:
        """See `NamespaceInformer.forget`."""
        with self._lock:
            informer = self._informers.get(namespace)
        if informer is not None:
            informer.forget(name)

    def ensure(self, namespace: str) -> None:
        with self._lock:
            if self._active and namespace not in self._informers and _watchable(namespace):
                self._start(namespace)

    def _start(self, namespace: str) -> None:
        informer = NamespaceInformer(
            self._api,
            namespace,
            self.queue,
            watch_timeout=self._watch_timeout,
            connect_timeout=self._connect_timeout,
            recheck_seconds=self._recheck,
            start_timeout=self._start_timeout,
            monotonic=self._monotonic,
        )
        self._informers[namespace] = informer
        informer.start()
        logger.info("watching Jobs in %s", namespace)

    def stop(self) -> None:
        """Cut every stream at once and forget what was queued (a step-down)."""
        with self._lock:
            self._active = False
            informers, self._informers = list(self._informers.values()), {}
            self.queue.wake = lambda: None
        for informer in informers:
            informer.stop()
        self.queue.clear()

    def close(self) -> None:
        with self._lock:
            informers = list(self._informers.values())
        self.stop()
        for informer in informers:
            informer.join(2.0)

    def snapshot(self, namespace: str) -> dict[str, dict[str, Any]] | None:
        with self._lock:
            informer = self._informers.get(namespace)
        return informer.snapshot() if informer is not None else None

    def informer(self, namespace: str) -> NamespaceInformer | None:
        with self._lock:
            return self._informers.get(namespace)

    def take(self) -> set[TaskId]:
        """The task ids queued since the last call, and those of waiting Jobs whose recheck is due
        (looked for at most once a second: a scan of every waiting Job per round would cost more)."""
        ids = self.queue.take()
        now = self._monotonic()
        if now >= self._next_scan:
            self._next_scan = now + min(1.0, self._recheck)
            with self._lock:
                informers = list(self._informers.values())
            for informer in informers:
                ids |= informer.due_task_ids()
        return ids
