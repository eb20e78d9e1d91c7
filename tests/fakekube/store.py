"""The fake API server's state: Jobs and pods, with the bookkeeping the real server does.

Thread-safe (one lock). Objects are plain dicts exactly as they go over the wire; every mutation
bumps a global resourceVersion. Errors are `StatusError`s that the handler turns into Status bodies.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from tests.fakekube import deletion
from tests.fakekube.patches import PatchError, json_patch, merge_patch
from tests.fakekube.selectors import SelectorError, parse_selector
from tests.fakekube.watch import WatchJournal

TASK_ID_LABEL = "nightwatch.io/task-id"
_REASONS = {400: "BadRequest", 403: "Forbidden", 404: "NotFound", 409: "AlreadyExists", 422: "Invalid"}

Key = tuple[str, str]


class StatusError(Exception):
    """An API error: becomes a `kind: Status` body with this code and reason."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
        *,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}
        self.metadata = metadata or {}
        """The Status's ListMeta: a 410 Expired list carries a fresh `continue` token here."""

    def body(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": self.metadata,
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }


def rfc3339(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _details(name: str, kind: str) -> dict[str, Any]:
    return {"name": name, "group": "batch" if kind == "jobs" else "", "kind": kind}


class Store:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.jobs: dict[Key, dict[str, Any]] = {}
        self.pods: dict[Key, dict[str, Any]] = {}
        self.created_at: dict[Key, float] = {}
        """time.monotonic() of each Job's creation, for the timed controller."""
        self.created_by: dict[Key, str] = {}
        """The User-Agent that created each Job (kept off the object, so clients never see it)."""
        self.created_wall: dict[Key, float] = {}
        """time.time() of each Job's creation: creationTimestamp has 1 s resolution, latency needs better."""
        self.finished_at: dict[Key, float] = {}
        """time.monotonic() at which each Job with a `ttlSecondsAfterFinished` got its Complete/Failed
        condition: what the TTL-after-finished controller counts from (see `deletion.py`)."""
        self.defer_garbage_collection = False
        """True: Foreground deletions wait for `collect_garbage()` (a test's hook) instead of finishing at once."""
        self._rv = 1000
        self.compacted_rv = 0
        """Continue tokens issued before this resourceVersion are expired (etcd compacted their revision)."""
        self.compact_before_continues = 0
        """The next N lists that carry a continue token find it compacted first (`compact()` just before)."""
        self.watch = WatchJournal()
        """Every Job change, for watches (see `watch.py`)."""

    def reset(self) -> None:
        with self.lock:
            self.watch.compact(self._rv)
            self.watch.drop_streams()
            self.jobs.clear()
            self.pods.clear()
            self.created_at.clear()
            self.created_by.clear()
            self.created_wall.clear()
            self.finished_at.clear()
            self.defer_garbage_collection = False

    def compact(self) -> None:
        """Compact history up to now, as etcd does every 5 minutes: every continue token issued so far expires."""
        with self.lock:
            # etcd keeps the revision it compacts at: lists from now on are not expired by it. The bump
            # stands for the writes that happen between a real cluster's compactions.
            self.compacted_rv = int(self._next_rv())

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _journal(self, key: Key, before: dict[str, Any] | None) -> None:
        """Record what became of the Job at `key` (under the lock): ADDED, MODIFIED or DELETED."""
        job = self.jobs.get(key)
        if job is None:
            if before is not None:
                gone = _snapshot(before)
                gone["metadata"]["resourceVersion"] = self._next_rv()
                self.watch.record(self._rv, "DELETED", key[0], gone)
            return
        rv = int(job["metadata"]["resourceVersion"])
        if before is not None and before["metadata"].get("resourceVersion") == str(rv):
            return  # unchanged
        self.watch.record(rv, "ADDED" if before is None else "MODIFIED", key[0], _snapshot(job))

    def watch_jobs(
        self,
        namespace: str | None,
        selector: str | None,
        since: str | None,
        *,
        bookmarks: bool,
        timeout: float,
        client: str = "",
    ) -> Any:
        """The lines of a Job watch (see `WatchJournal.stream`)."""
        try:
            parse_selector(selector)
        except SelectorError as exc:
            raise StatusError(400, "BadRequest", f"unable to parse requirement: {exc}") from None
        if since not in (None, "", "0"):
            try:
                int(since)
            except ValueError:
                raise StatusError(400, "BadRequest", f"invalid resource version: {since}") from None

        def current() -> tuple[int, list[dict[str, Any]]]:
            with self.lock:
                return self._rv, [_snapshot(j) for j in self.jobs.values()]

        return self.watch.stream(
            namespace, selector, since, bookmarks=bookmarks, timeout=timeout, current=current, client=client
        )

    def hold_watch(self) -> None:
        """Changes from now on are journalled but not streamed until `watch.release()`."""
        with self.lock:
            self.watch.hold(self._rv)

    def compact_watch(self) -> None:
        """Forget the watch history: a watch from any version issued so far gets 410 Gone."""
        with self.lock:
            self.watch.compact(self._rv)

    # -- Jobs ---------------------------------------------------------------------------------
    def create_job(
        self, namespace: str, body: Any, *, created_by: str = "", admit: Callable[[str, str], None] | None = None
    ) -> dict[str, Any]:
        """Store a new Job. `admit(namespace, name)` is validating admission (ResourceQuota): it runs
        after validation and before the name is checked for existence, under the store's lock."""
        from tests.fakekube.validation import check_job  # validation raises this module's StatusError

        if not isinstance(body, dict):
            raise StatusError(400, "BadRequest", "the body of the request was not a JSON object")
        job = copy.deepcopy(body)
        meta = job.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if meta.get("namespace") not in (None, namespace):
            raise StatusError(400, "BadRequest", "the namespace of the provided object does not match the namespace")
        name = meta.get("name", "")
        check_job(job)
        with self.lock:
            if admit is not None:
                admit(namespace, name)
            existing = self.jobs.get((namespace, name))
            if existing is not None and deletion.is_being_deleted(existing):
                raise StatusError(
                    409,
                    "AlreadyExists",
                    f'object is being deleted: jobs.batch "{name}" already exists',
                    _details(name, "jobs"),
                )
            if existing is not None:
                raise StatusError(409, "AlreadyExists", f'jobs.batch "{name}" already exists', _details(name, "jobs"))
            uid = str(uuid.uuid4())
            meta.update(
                namespace=namespace,
                uid=uid,
                resourceVersion=self._next_rv(),
                creationTimestamp=rfc3339(),
                generation=1,
            )
            meta.setdefault("labels", {})
            job.setdefault("apiVersion", "batch/v1")
            job.setdefault("kind", "Job")
            spec = job.setdefault("spec", {})
            spec.setdefault("backoffLimit", 6)
            spec.setdefault("completions", 1)
            spec.setdefault("parallelism", 1)
            template_labels = spec["template"].setdefault("metadata", {}).setdefault("labels", {})
            # Both spellings, as the Job controller sets them since 1.27 (`job-name` before and since).
            template_labels.update({"controller-uid": uid, "batch.kubernetes.io/job-name": name, "job-name": name})
            job["status"] = {}
            self.jobs[(namespace, name)] = job
            self._journal((namespace, name), None)
            self.created_at[(namespace, name)] = time.monotonic()
            self.created_by[(namespace, name)] = created_by
            self.created_wall[(namespace, name)] = time.time()
            return copy.deepcopy(job)

    def get_job(self, namespace: str, name: str) -> dict[str, Any]:
        with self.lock:
            job = self.jobs.get((namespace, name))
            if job is None:
                raise StatusError(404, "NotFound", f'jobs.batch "{name}" not found', _details(name, "jobs"))
            return copy.deepcopy(job)

    def list_jobs(self, namespace: str | None, selector: str | None, limit: int, token: str | None) -> dict[str, Any]:
        with self.lock:
            items = (j for (ns, _), j in self.jobs.items() if namespace is None or ns == namespace)
            return self._page("JobList", "batch/v1", items, selector, limit, token)

    def patch_job(
        self, namespace: str, name: str, patch: Any, content_type: str, *, subresource: str = ""
    ) -> dict[str, Any]:
        with self.lock:
            current = self.get_job(namespace, name)
            before = _snapshot(self.jobs[(namespace, name)])
            try:
                if isinstance(patch, list) or "json-patch" in content_type:
                    if not isinstance(patch, list):
                        raise PatchError("a JSON patch must be a list of operations")
                    patched = json_patch(current, patch)
                else:
                    patched = merge_patch(current, patch)
            except PatchError as exc:
                raise StatusError(422, "Invalid", str(exc), _details(name, "jobs")) from None
            wanted_rv = (patch.get("metadata") or {}).get("resourceVersion") if isinstance(patch, dict) else None
            if wanted_rv is not None and wanted_rv != current["metadata"]["resourceVersion"]:
                raise StatusError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on jobs.batch "{name}": the object has been modified; '
                    "please apply your changes to the latest version and try again",
                    _details(name, "jobs"),
                )
            if subresource == "status":
                # The status subresource changes only status.
                result = current
                result["status"] = patched.get("status") or {}
            else:
                # The main resource never changes status, nor server-owned metadata.
                result = patched
                result["status"] = current.get("status", {})
                for key in ("name", "namespace", "uid", "creationTimestamp", "generation"):
                    result["metadata"][key] = current["metadata"][key]
                if result.get("spec") != current.get("spec"):
                    result["metadata"]["generation"] = current["metadata"]["generation"] + 1
                deletion.after_patch(self, (namespace, name), current, result)
            result["metadata"]["resourceVersion"] = self._next_rv()
            self.jobs[(namespace, name)] = result
            deletion.remove_if_released(self, (namespace, name))
            self._journal((namespace, name), before)
            return copy.deepcopy(result)

    def set_job_status(self, namespace: str, name: str, status: dict[str, Any]) -> dict[str, Any]:
        """Replace a Job's status, as the Job controller would."""
        with self.lock:
            job = self.jobs.get((namespace, name))
            if job is None:
                raise StatusError(404, "NotFound", f'jobs.batch "{name}" not found', _details(name, "jobs"))
            before = _snapshot(job)
            job["status"] = copy.deepcopy(status)
            job["metadata"]["resourceVersion"] = self._next_rv()
            if (namespace, name) not in self.finished_at and _finished(job):
                self.finished_at[(namespace, name)] = time.monotonic()
            self._journal((namespace, name), before)
            return copy.deepcopy(job)

    def delete_job(
        self, namespace: str, name: str, propagation: str | None, preconditions: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """DELETE a Job, honouring its finalizers, the propagation policy and a UID precondition
        (see `deletion.py`). batch/v1 Jobs deleted through the API orphan their pods unless told otherwise."""
        with self.lock:
            before = self.jobs.get((namespace, name))
            if before is None:
                raise StatusError(404, "NotFound", f'jobs.batch "{name}" not found', _details(name, "jobs"))
            before = _snapshot(before)
            try:
                return deletion.delete_job(self, (namespace, name), propagation, preconditions)
            finally:
                self._journal((namespace, name), before)

    def collect_garbage(self) -> None:
        """Let the garbage collector finish every Foreground deletion (with `defer_garbage_collection`)."""
        with self.lock:
            before = {k: _snapshot(j) for k, j in self.jobs.items() if deletion.is_being_deleted(j)}
            deletion.collect_garbage(self)
            for key, job in before.items():
                self._journal(key, job)

    # -- Pods ---------------------------------------------------------------------------------
    def add_pod(self, namespace: str, pod: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            pod = copy.deepcopy(pod)
            meta = pod.setdefault("metadata", {})
            meta.setdefault("name", "pod-" + uuid.uuid4().hex[:8])
            meta.update(namespace=namespace, uid=str(uuid.uuid4()), resourceVersion=self._next_rv())
            meta.setdefault("creationTimestamp", rfc3339())
            meta.setdefault("labels", {})
            pod.setdefault("apiVersion", "v1")
            pod.setdefault("kind", "Pod")
            self.pods[(namespace, meta["name"])] = pod
            return copy.deepcopy(pod)

    def list_pods(
        self, namespace: str, selector: str | None, limit: int, token: str | None, *, field_selector: str | None = None
    ) -> dict[str, Any]:
        phase = _phase_selector(field_selector)
        with self.lock:
            items = (
                p
                for (ns, _), p in self.pods.items()
                if ns == namespace and (phase is None or (p.get("status") or {}).get("phase") == phase)
            )
            return self._page("PodList", "v1", items, selector, limit, token)

    # -- lists --------------------------------------------------------------------------------
    def _continue_after(self, token: str) -> list[str]:
        """The key a continue token resumes after; 400 if malformed, 410 (with a fresh token) if compacted."""
        after, rv = _decode_continue(token)
        if self.compact_before_continues > 0:
            self.compact_before_continues -= 1
            self.compacted_rv = int(self._next_rv())
        if 0 < rv < self.compacted_rv:
            raise StatusError(410, "Expired", _EXPIRED_MESSAGE, metadata={"continue": _encode_continue(after, -1)})
        return after

    def _page(
        self,
        kind: str,
        api_version: str,
        items: Iterable[dict[str, Any]],
        selector: str | None,
        limit: int,
        token: str | None,
    ) -> dict[str, Any]:
        try:
            matches = parse_selector(selector)
        except SelectorError as exc:
            raise StatusError(400, "BadRequest", f"unable to parse requirement: {exc}") from None
        after = self._continue_after(token) if token else None
        selected = sorted(
            (i for i in items if matches(i["metadata"].get("labels") or {})),
            key=lambda i: [i["metadata"]["namespace"], i["metadata"]["name"]],
        )
        if after is not None:
            selected = [i for i in selected if [i["metadata"]["namespace"], i["metadata"]["name"]] > after]
        more = ""
        if limit > 0 and len(selected) > limit:
            selected = selected[:limit]
            last = selected[-1]["metadata"]
            more = _encode_continue([last["namespace"], last["name"]], self._rv)
        metadata: dict[str, Any] = {"resourceVersion": str(self._rv)}
        if more:
            metadata["continue"] = more
        return {
            "kind": kind,
            "apiVersion": api_version,
            "metadata": metadata,
            "items": [_snapshot(i) for i in selected],
        }


_EXPIRED_MESSAGE = (
    "The provided continue parameter is too old to display a consistent list result. You can start a new list "
    "without the continue parameter, or use the continue token in this response to retrieve the remainder of the "
    "results. Continuing with the provided token results in an inconsistent list - objects that were created, "
    "modified, or deleted between the time the first chunk was returned and now may show up in the list."
)


def _encode_continue(after: list[str], rv: int) -> str:
    """A continue token: the last key returned and the resourceVersion of the list (-1: "latest", which
    never expires: the token a 410 hands out for an inconsistent remainder)."""
    return base64.urlsafe_b64encode(json.dumps({"after": after, "rv": rv}).encode()).decode()


def _decode_continue(token: str) -> tuple[list[str], int]:
    """Raises the 400 the real server answers (storage.DecodeContinue failing) for a token it did not issue."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        after, rv = data["after"], data["rv"]
        if not (isinstance(after, list) and all(isinstance(k, str) for k in after) and isinstance(rv, int)):
            raise ValueError("wrong types")
    except (ValueError, KeyError, TypeError) as exc:
        raise StatusError(400, "BadRequest", f"invalid continue token: continue key is not valid: {exc}") from None
    if rv == 0:
        raise StatusError(400, "BadRequest", "0 continue resource version is not allowed when using continue")
    return after, rv


def _snapshot(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of a stored object safe to serialize outside the lock, without a deep copy per item.

    Stored objects are never changed in place below the top level except `metadata.resourceVersion`
    (status is replaced whole, patches build new objects), so copying the top level and metadata is
    enough; a deep copy of every listed item made the fake, not the client, the cost of a big list.
    """
    return {**obj, "metadata": dict(obj["metadata"])}


def _finished(job: dict[str, Any]) -> bool:
    """A Job the TTL-after-finished controller counts: a true Complete or Failed condition and a TTL."""
    if not isinstance(job.get("spec", {}).get("ttlSecondsAfterFinished"), int):
        return False
    return any(
        isinstance(c, dict) and c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions") or ()
    )


def reason_for(code: int) -> str:
    return _REASONS.get(code, "InternalError" if code >= 500 else "BadRequest")


def _phase_selector(field_selector: str | None) -> str | None:
    """The one field selector nightwatch uses on pods: `status.phase=X`; anything else is a 400."""
    if not field_selector:
        return None
    key, sep, value = field_selector.partition("=")
    if key != "status.phase" or not sep or not value:
        raise StatusError(400, "BadRequest", f"field label not supported by this fake: {field_selector}")
    return value
