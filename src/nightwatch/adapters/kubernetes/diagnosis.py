"""Root causes of Jobs stuck pending, read per namespace rather than per task.

A pending pod says why it does not run (ImagePullBackOff, CreateContainerConfigError,
Unschedulable...). Reading the pods of each stuck task would cost one request per task and tick:
with thousands of tasks waiting for quota that starves the rate limiter and delays new Jobs. So
the pods are read with ONE paginated list per namespace (nightwatch's label, phase Pending), only
for namespaces that have a task pending longer than the threshold, and at most once per threshold
period per namespace; in between the last answer is reused.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from nightwatch.adapters.kubernetes.status import pending_diagnosis, task_id_of

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
