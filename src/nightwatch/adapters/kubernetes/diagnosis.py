"""Root causes of Jobs stuck pending, read per namespace rather than per task.

A pending pod says why it does not run (ImagePullBackOff, CreateContainerConfigError,
Unschedulable...). Reading the pods of each stuck task would cost one request per task and tick:
with thousands of tasks waiting for quota that starves the rate limiter and delays new Jobs. So
the pods are read with ONE paginated list per namespace (nightwatch's label, phase Pending), only
for namespaces that have a task pending longer than the threshold, and at most once per threshold
period per namespace; in between the last answer is reused.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from nightwatch.adapters.kubernetes.status import pending_diagnosis, task_id_of

logger = logging.getLogger(__name__)

ListPods = Callable[[str], Iterable[Mapping[str, Any]]]
"""Every pending nightwatch pod of a namespace (the caller paginates)."""


class PendingDiagnoses:
    def __init__(self, list_pods: ListPods, refresh_seconds: float, now: Callable[[], datetime]) -> None:
        self._list_pods = list_pods
        self._refresh = refresh_seconds
        self._now = now
        self._cache: dict[str, tuple[datetime, dict[str, str]]] = {}
        self._lock = threading.Lock()

    def for_namespace(self, namespace: str) -> Mapping[str, str]:
        """task id (label value) -> diagnosis, for the tasks of `namespace` whose pods are in trouble."""
        now = self._now()
        with self._lock:
            cached = self._cache.get(namespace)
        if cached is not None and (now - cached[0]).total_seconds() < self._refresh:
            return cached[1]
        by_task: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        for pod in self._list_pods(namespace):
            task_id = task_id_of(pod)
            if task_id is not None:
                by_task[task_id].append(pod)
        diagnoses = {task_id: d for task_id, pods in by_task.items() if (d := pending_diagnosis(pods))}
        with self._lock:
            self._cache[namespace] = (now, diagnoses)
        return diagnoses


# -- Jobs with no pod at all: the Job controller's Events ---------------------------------------------
# When admission refuses a Job's pods (Pod Security `restricted`, a ResourceQuota on pods or cpu, a
# LimitRange, a pod webhook), no pod exists to read: the Job shows `active: 0` and no conditions, and
# the controller records a Warning Event `FailedCreate` ("Error creating: pods "x-abcde" is forbidden:
# ...") on the Job. Events carry no labels of ours, so they are read with ONE field-selected list per
# namespace per observation (never one per task), and matched to Jobs by uid (an Event of an earlier
# Job of the same name, kept for an hour, is not this Job's).

JOB_CREATE_FAILURES = "involvedObject.kind=Job,reason=FailedCreate"
"""The field selector of the one Events list per namespace."""

MAX_EVENT_CHARS = 1000
"""A Pod Security refusal lists every violated rule; the row keeps the first thousand characters."""

NO_POD_GRACE_SECONDS = 2.0
"""A Job's pod normally exists within milliseconds; a Job without one this long (or `pending_diagnosis_after`,
if shorter) gets its namespace's Events read."""


def _event_time(event: Mapping[str, Any]) -> str:
    series = event.get("series") or {}
    return str(
        event.get("lastTimestamp")
        or series.get("lastObservedTime")
        or event.get("eventTime")
        or (event.get("metadata") or {}).get("creationTimestamp")
        or ""
    )


def creation_failures(events: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Job uid (or `name:<name>` for an Event without one) -> `FailedCreate: <message>` of its newest Event."""
    newest: dict[str, tuple[str, str]] = {}
    for event in events:
        involved = event.get("involvedObject") or {}
        if involved.get("kind") != "Job" or event.get("reason") != "FailedCreate":
            continue
        key = str(involved.get("uid") or f"name:{involved.get('name', '')}")
        when = _event_time(event)
        if key not in newest or when >= newest[key][0]:
            message = " ".join(str(event.get("message") or "").split())
            if len(message) > MAX_EVENT_CHARS:
                message = message[: MAX_EVENT_CHARS - 3] + "..."
            newest[key] = (when, f"FailedCreate: {message}" if message else "FailedCreate")
    return {key: text for key, (_, text) in newest.items()}


def creation_failure_of(failures: Mapping[str, str], job: Mapping[str, Any]) -> str:
    meta = job.get("metadata") or {}
    return failures.get(str(meta.get("uid") or ""), "") or failures.get(f"name:{meta.get('name', '')}", "")


# -- Events nightwatch may not list: RBAC without `events list` ----------------------------------------
# A cluster whose Role predates the Events diagnosis answers every Events list with 403. Asking again
# every tick would cost a request per namespace and tick and log an ERROR each time, for a nicety: the
# pods' own reason (ImagePullBackOff, Unschedulable) is still read. So such a namespace is not asked
# again for EVENTS_FORBIDDEN_BACKOFF_SECONDS, the 403 is logged once, then reminded at most every
# EVENTS_FORBIDDEN_REMINDER_SECONDS (as the service logs an outage), and a list that works again says so.

EVENTS_FORBIDDEN_BACKOFF_SECONDS = 300.0
"""A namespace whose Events list answered 403 is not asked again for this long."""

EVENTS_FORBIDDEN_REMINDER_SECONDS = 600.0
"""While the 403s go on, a reminder at most this often per namespace."""


@dataclass
class _Refused:
    since: datetime
    retry_at: datetime
    warned: datetime
    refusals: int


class ForbiddenEvents:
    def __init__(
        self,
        now: Callable[[], datetime],
        *,
        backoff_seconds: float = EVENTS_FORBIDDEN_BACKOFF_SECONDS,
        reminder_seconds: float = EVENTS_FORBIDDEN_REMINDER_SECONDS,
    ) -> None:
        self._now = now
        self._backoff = timedelta(seconds=backoff_seconds)
        self._reminder = timedelta(seconds=reminder_seconds)
        self._refused: dict[str, _Refused] = {}
        self._lock = threading.Lock()

    def may_list(self, namespace: str) -> bool:
        """False while `namespace` is in its back-off after a 403."""
        with self._lock:
            refused = self._refused.get(namespace)
        return refused is None or self._now() >= refused.retry_at

    def refused(self, namespace: str, message: str) -> None:
        """An Events list of `namespace` answered 403: back off, and log it (once, then reminders)."""
        now = self._now()
        with self._lock:
            refused = self._refused.get(namespace)
            first = refused is None
            if refused is None:
                refused = self._refused[namespace] = _Refused(now, now, now, 0)
            refused.refusals += 1
            refused.retry_at = now + self._backoff
            remind = not first and now - refused.warned >= self._reminder
            if remind:
                refused.warned = now
            since, refusals = refused.since, refused.refusals
        if first:
            logger.error(
                "listing events forbidden in namespace %s: nightwatch's RBAC lacks `list` on events there "
                "(see deploy/kubernetes/rbac.yaml); Jobs whose pods are refused get no FailedCreate reason, "
                "pods' own reasons still show; asking again every %d s: %s",
                namespace,
                self._backoff.total_seconds(),
                message,
            )
        elif remind:
            logger.warning(
                "listing events still forbidden in namespace %s (%d refusals in %d s): %s",
                namespace,
                refusals,
                (now - since).total_seconds(),
                message,
            )

    def listed(self, namespace: str) -> None:
        """An Events list of `namespace` worked: forget its 403s (and say so, if there were any)."""
        with self._lock:
            refused = self._refused.pop(namespace, None)
        if refused is not None:
            logger.info(
                "listing events allowed again in namespace %s after %d s of 403s",
                namespace,
                (self._now() - refused.since).total_seconds(),
            )
