"""What the Job controller would write into a Job's status, and an optional timer that does it.

`job_status(state)` builds the status dict of a Job that is pending, active, succeeded or failed
(with the conditions Kubernetes >= 1.31 sets: SuccessCriteriaMet/Complete, FailureTarget/Failed).
`AutoController` moves every Job along on a timer so a benchmark needs no test code in the loop.

Like the Job controller of a real cluster (1.31+), it also:
- refuses pods in a namespace set with `refuse_pods` (Pod Security, quota, a webhook): the Job stays
  with `active: 0`, a `startTime` and no conditions, and a Warning Event `FailedCreate` ("Error
  creating: pods "<job>-xxxxx" is forbidden: <reason>") is recorded on it;
- suspends a Job whose `spec.suspend` is true: its pods are deleted, `active: 0`, condition
  `Suspended=True` (JobSuspended, "Job suspended"), no `startTime`; resuming sets it False
  (JobResumed) and starts the Job's clock (and its activeDeadlineSeconds) again;
- fails a Job active longer than `spec.activeDeadlineSeconds` in two steps: first `FailureTarget`
  (DeadlineExceeded) with `status.terminating` = its pods, which get a deletionTimestamp and still
  run; `terminate_after_ms` later the pods have terminated (exit code 137, phase Failed),
  `terminating: 0`, and `Failed` is added. A Job whose pods have all ended already (the backoff
  failure of `fail_image`, a success) gets both conditions in one step, as the controller does when
  nothing is left to terminate.
It does not model: indexed Jobs, parallelism > 1, pod failure policies, retries of a refused pod
(one FailedCreate per Job, aggregated), or the kubelet's grace period beyond `terminate_after_ms`.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from tests.fakekube.events import EventLog
from tests.fakekube.store import TASK_ID_LABEL, Store, rfc3339

SUCCESS = ("CompletionsReached", "Reached expected number of succeeded pods")
FAILURE = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
DEADLINE = ("DeadlineExceeded", "Job was active longer than specified deadline")
SUSPENDED = ("JobSuspended", "Job suspended")
RESUMED = ("JobResumed", "Job resumed")
KILLED_EXIT_CODE = 137
"""SIGKILL after the grace period: what a container killed at its Job's deadline reports."""


def _condition(kind: str, reason: str, message: str, status: str = "True") -> dict[str, Any]:
    now = rfc3339()
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastProbeTime": now,
        "lastTransitionTime": now,
    }


def job_status(state: str, *, reason: str = "", message: str = "", failed: int = 1) -> dict[str, Any]:
    """The status of a Job in `state`: pending, active, succeeded or failed."""
    now = rfc3339()
    if state == "pending":
        return {}
    if state == "active":
        return {"active": 1, "ready": 1, "startTime": now}
    if state == "succeeded":
        reason, message = reason or SUCCESS[0], message or SUCCESS[1]
        return {
            "succeeded": 1,
            "startTime": now,
            "completionTime": now,
            "conditions": [_condition("SuccessCriteriaMet", reason, message), _condition("Complete", reason, message)],
        }
    if state == "failed":
        reason, message = reason or FAILURE[0], message or FAILURE[1]
        return {
            "failed": failed,
            "startTime": now,
            "conditions": [_condition("FailureTarget", reason, message), _condition("Failed", reason, message)],
        }
    raise ValueError(f"unknown Job state {state!r} (pending, active, succeeded, failed)")


def failed_pod(job: dict[str, Any], *, exit_code: int = 1, reason: str = "Error") -> dict[str, Any]:
    """A pod of `job` whose `task` container terminated: what a failed Job leaves behind."""
    meta = job["metadata"]
    labels = dict(job["spec"]["template"].get("metadata", {}).get("labels", {}))
    labels.setdefault(TASK_ID_LABEL, meta.get("labels", {}).get(TASK_ID_LABEL, ""))
    return {
        "metadata": {"name": f"{meta['name']}-x1", "labels": labels},
        "status": {
            "phase": "Failed",
            "containerStatuses": [{"name": "task", "state": {"terminated": {"exitCode": exit_code, "reason": reason}}}],
        },
    }


def disrupted_pod(
    job: dict[str, Any], reason: str, *, message: str = "", exit_code: int = 137, node_lost: bool = False
) -> dict[str, Any]:
    """A pod of `job` taken away by the cluster: the `DisruptionTarget` condition the scheduler (preemption),
    the taint manager, the eviction API or the kubelet set before killing it (exit code 137 by default),
    or, with `node_lost`, a pod whose node went away (`status.reason: NodeLost`, no condition)."""
    pod = failed_pod(job, exit_code=exit_code, reason="Error")
    if node_lost:
        pod["status"]["reason"] = "NodeLost"
        pod["status"]["message"] = "Node which was running pod is unresponsive"
    else:
        pod["status"]["conditions"] = [
            {
                **_condition("DisruptionTarget", reason, message or f"{reason}: the pod was disrupted"),
            }
        ]
    return pod


@dataclass
class ControllerMode:
    mode: str = "off"
    """off: Jobs move only through hooks; timed: active after `active_after_ms`, terminal after
    `complete_after_ms` (or after N seconds for a Job whose command is `["sleep", "N"]`, so a test can
    give every task its own duration); complete: every Job succeeds at the next tick. In timed and
    complete modes a Job whose image is `fail_image` fails with BackoffLimitExceeded instead."""
    active_after_ms: float = 50.0
    complete_after_ms: float = 200.0
    fail_image: str = "fail"
    collect_finished: bool = False
    """Run the TTL-after-finished controller (in every mode, "off" included): a finished Job (a true
    Complete or Failed condition, whoever set it) is deleted `ttlSecondsAfterFinished` after it finished
    (0: at once) with Foreground propagation and a UID precondition, as a cluster's controller does."""
    pods: bool = False
    """Create a running pod for each Job it makes active (and delete it on suspend); off by default, so a
    benchmark's 20,000 Jobs do not bring 20,000 pods."""
    terminate_after_ms: float = 0.0
    """How long the pods of a Job past its deadline take to terminate (between FailureTarget and Failed)."""


class AutoController:
    def __init__(self, store: Store, tick_seconds: float = 0.01, events: EventLog | None = None) -> None:
        self.store = store
        self.events = events or EventLog(store)
        self.refused_pods: dict[str, str] = {}
        """namespace -> why admission refuses every pod there (set through `FakeKubeServer.refuse_pods`)."""
        self._since: dict[tuple[str, str], float] = {}
        """When a Job's clock restarted (resumed, or its pods admitted again): timed durations count from it."""
        self._active_since: dict[tuple[str, str], float] = {}
        self._terminating: dict[tuple[str, str], float] = {}
        """Jobs past their deadline whose pods are terminating: key -> when they have terminated."""
        self._held_by_admission: set[tuple[str, str]] = set()
        self.settings = ControllerMode()
        self._tick = tick_seconds
        self._stop = threading.Event()
        self._open: dict[tuple[str, str], str] = {}
        """Jobs not yet terminal, key -> uid; found by set difference against the store's keys so that
        a step costs per open Job, not per Job ever created (a soak holds 20,000)."""
        self._known: set[tuple[str, str]] = set()
        self.collected: set[tuple[str, str]] = set()
        """Jobs deleted by their TTL, as the TTL-after-finished controller of a real cluster does (a Job
        held by a finalizer is only marked for deletion: it stays until the finalizer is removed)."""
        self._thread: threading.Thread | None = None

    def configure(self, settings: ControllerMode) -> None:
        self.settings = settings
        if (settings.mode != "off" or settings.collect_finished) and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="fakekube-controller", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _run(self) -> None:
        while not self._stop.wait(self._tick):
            if self.settings.mode != "off" or self.settings.collect_finished:
                self.step()

    def step(self) -> None:
        """Move every open Job one step along (called by the timer; tests may call it directly)."""
        with self.store.lock:
            # Settings are read under the lock: once a test has reconfigured and then taken the lock,
            # no step still runs on the old ones.
            settings, now = self.settings, time.monotonic()
            keys = self.store.jobs.keys()
            for key in self._known - keys:  # deleted: a Job created again under that name is new
                self._known.discard(key)
                self._open.pop(key, None)
                self._since.pop(key, None)
                self._active_since.pop(key, None)
                self._terminating.pop(key, None)
            for key in keys - self._known:
                self._known.add(key)
                self._open[key] = self.store.jobs[key]["metadata"]["uid"]
            if settings.mode == "off":  # only the TTL-after-finished controller runs (the bookkeeping above
                # still runs: a test's step() on an emptied store must forget the Jobs it had)
                if settings.collect_finished:
                    self._collect_finished(now)
                return
            for key in list(self._open):
                job = self.store.jobs[key]
                if job["metadata"].get("deletionTimestamp"):
                    continue  # being deleted (held by a finalizer): the Job controller leaves it alone
                if self._held(key, job, settings, now):
                    continue
                age_ms = (now - self._since.get(key, self.store.created_at.get(key, now))) * 1000
                container = job["spec"]["template"]["spec"]["containers"][0]
                terminal = settings.mode == "complete" or age_ms >= _duration_ms(container, settings)
                if self._past_deadline(key, job, now):
                    self._start_terminating(key, job, settings, now)
                    del self._open[key]
                elif terminal:
                    if container.get("image") == settings.fail_image:
                        self.store.set_job_status(*key, job_status("failed"))
                        self._delete_pods(key, job)
                        self.store.add_pod(key[0], failed_pod(job))
                    else:
                        self.store.set_job_status(*key, job_status("succeeded"))
                        self._end_pods(key, job)
                    del self._open[key]
                elif age_ms >= settings.active_after_ms and not job["status"].get("active"):
                    self._activate(key, job, settings, now)
            self._finish_terminating(now)
            if settings.collect_finished:
                self._collect_finished(time.monotonic())  # after this step's finishes were stamped

    def _collect_finished(self, now: float) -> None:
        """The TTL-after-finished controller: delete each finished Job whose TTL has passed (a Job whose
        pods are still terminating has no Failed condition yet, so it is not finished)."""
        for key, finished in list(self.store.finished_at.items()):
            job = self.store.jobs.get(key)
            if job is None or job["metadata"].get("deletionTimestamp"):
                continue  # already going (the store forgets it when it is removed)
            ttl = job["spec"].get("ttlSecondsAfterFinished")
            if not isinstance(ttl, int):
                del self.store.finished_at[key]  # the TTL was patched away: kept
                continue
            if now >= finished + ttl:
                self.store.delete_job(*key, "Foreground", {"uid": job["metadata"]["uid"]})
                self.collected.add(key)

    # -- admission, suspend and deadlines (each called under the store's lock) -------------------
    def _held(self, key: tuple[str, str], job: dict[str, Any], settings: ControllerMode, now: float) -> bool:
        """Suspend or resume a Job, or refuse its pods; True while the Job cannot make progress."""
        status = job.get("status") or {}
        suspended = _true_condition(status, "Suspended")
        if job["spec"].get("suspend") is True:
            if not suspended:
                self._delete_pods(key, job)
                conditions = [c for c in status.get("conditions") or () if c.get("type") != "Suspended"]
                conditions.append(_condition("Suspended", *SUSPENDED))
                self.store.set_job_status(*key, {"active": 0, "ready": 0, "conditions": conditions})
                self.events.record(job, "Job", "Normal", "Suspended", SUSPENDED[1])
                self._active_since.pop(key, None)
            return True
        if suspended:
            conditions = [c for c in status.get("conditions") or () if c.get("type") != "Suspended"]
            conditions.append(_condition("Suspended", *RESUMED, status="False"))
            self.store.set_job_status(*key, {"active": 0, "ready": 0, "startTime": rfc3339(), "conditions": conditions})
            self.events.record(job, "Job", "Normal", "Resumed", RESUMED[1])
            self._since[key] = now
            return True
        refusal = self.refused_pods.get(key[0])
        if refusal is not None:
            age_ms = (now - self._since.get(key, self.store.created_at.get(key, now))) * 1000
            if age_ms >= settings.active_after_ms and not status.get("active"):
                self._held_by_admission.add(key)
                if not status.get("startTime"):
                    self.store.set_job_status(*key, {**status, "active": 0, "startTime": rfc3339()})
                pod = f"{key[1]}-{uuid.uuid4().hex[:5]}"
                message = f'Error creating: pods "{pod}" is forbidden: {refusal}'
                if not any(e["reason"] == "FailedCreate" for e in self.events.about(*key)):
                    self.events.record(self.store.jobs[key], "Job", "Warning", "FailedCreate", message)
            return True
        if key in self._held_by_admission:
            self._held_by_admission.discard(key)
            self._since[key] = now  # its pods are admitted now: its clock starts
        return False

    def _activate(self, key: tuple[str, str], job: dict[str, Any], settings: ControllerMode, now: float) -> None:
        status = job_status("active")
        previous = job.get("status") or {}
        status["startTime"] = previous.get("startTime") or status["startTime"]
        if previous.get("conditions"):  # Suspended=False after a resume stays
            status["conditions"] = previous["conditions"]
        self.store.set_job_status(*key, status)
        self._active_since[key] = now
        if settings.pods:
            self.store.add_pod(key[0], running_pod(job))

    def _past_deadline(self, key: tuple[str, str], job: dict[str, Any], now: float) -> bool:
        deadline = job["spec"].get("activeDeadlineSeconds")
        since = self._active_since.get(key)
        return isinstance(deadline, int) and since is not None and now - since >= deadline

    def _start_terminating(
        self, key: tuple[str, str], job: dict[str, Any], settings: ControllerMode, now: float
    ) -> None:
        """Deadline passed: FailureTarget now, the pods get a deletionTimestamp and still run."""
        pods = self._pods_of(key, job)
        if not pods:
            pods = [self.store.add_pod(key[0], running_pod(job))]
        for pod in pods:
            stored = self.store.pods[(key[0], pod["metadata"]["name"])]
            stored["metadata"] = {
                **stored["metadata"],
                "deletionTimestamp": rfc3339(),
                "deletionGracePeriodSeconds": 30,
            }
        status = dict(job.get("status") or {})
        status.update(active=0, ready=0, terminating=len(pods))
        status["conditions"] = [*(status.get("conditions") or ()), _condition("FailureTarget", *DEADLINE)]
        self.store.set_job_status(*key, status)
        self._terminating[key] = now + settings.terminate_after_ms / 1000

    def _finish_terminating(self, now: float) -> None:
        """The pods of a Job past its deadline have terminated: exit code 137, then Failed."""
        for key, done_at in list(self._terminating.items()):
            if now < done_at:
                continue
            del self._terminating[key]
            job = self.store.jobs.get(key)
            if job is None:
                continue
            pods = self._pods_of(key, job)
            for pod in pods:
                stored = self.store.pods[(key[0], pod["metadata"]["name"])]
                stored["status"] = _terminated(KILLED_EXIT_CODE, "Error")
                stored["metadata"] = {**stored["metadata"], "resourceVersion": self.store._next_rv()}
            status = dict(job.get("status") or {})
            status.update(terminating=0, failed=(status.get("failed") or 0) + len(pods))
            status["conditions"] = [*(status.get("conditions") or ()), _condition("Failed", *DEADLINE)]
            self.store.set_job_status(*key, status)

    def _pods_of(self, key: tuple[str, str], job: dict[str, Any]) -> list[dict[str, Any]]:
        uid = job["metadata"]["uid"]
        return [
            pod
            for (ns, _), pod in self.store.pods.items()
            if ns == key[0] and (pod["metadata"].get("labels") or {}).get("controller-uid") == uid
        ]

    def _end_pods(self, key: tuple[str, str], job: dict[str, Any]) -> None:
        for pod in self._pods_of(key, job):
            stored = self.store.pods[(key[0], pod["metadata"]["name"])]
            stored["status"] = {**_terminated(0, "Completed"), "phase": "Succeeded"}

    def _delete_pods(self, key: tuple[str, str], job: dict[str, Any]) -> None:
        for pod in self._pods_of(key, job):
            del self.store.pods[(key[0], pod["metadata"]["name"])]


def _true_condition(status: dict[str, Any], kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True" for c in status.get("conditions") or ())


def _terminated(exit_code: int, reason: str) -> dict[str, Any]:
    return {
        "phase": "Failed",
        "containerStatuses": [
            {"name": "task", "state": {"terminated": {"exitCode": exit_code, "reason": reason}}, "ready": False}
        ],
    }


def running_pod(job: dict[str, Any]) -> dict[str, Any]:
    """The running pod the Job controller would create for `job` (labels from its template)."""
    meta = job["metadata"]
    labels = dict(job["spec"]["template"].get("metadata", {}).get("labels", {}))
    labels.setdefault(TASK_ID_LABEL, meta.get("labels", {}).get(TASK_ID_LABEL, ""))
    return {
        "metadata": {"name": f"{meta['name']}-{uuid.uuid4().hex[:5]}", "labels": labels},
        "status": {
            "phase": "Running",
            "containerStatuses": [{"name": "task", "state": {"running": {"startedAt": rfc3339()}}, "ready": True}],
        },
    }


def _duration_ms(container: dict[str, Any], settings: ControllerMode) -> float:
    """`complete_after_ms`, or N seconds for a container whose command is `["sleep", "N"]`."""
    command = container.get("command") or []
    if len(command) == 2 and command[0] == "sleep":
        try:
            return float(command[1]) * 1000
        except ValueError:
            pass
    return settings.complete_after_ms
