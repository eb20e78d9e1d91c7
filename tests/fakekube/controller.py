"""What the Job controller would write into a Job's status, and an optional timer that does it.

`job_status(state)` builds the status dict of a Job that is pending, active, succeeded or failed
(with the conditions Kubernetes >= 1.31 sets: SuccessCriteriaMet/Complete, FailureTarget/Failed).
`AutoController` moves every Job along on a timer so a benchmark needs no test code in the loop.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from tests.fakekube.store import TASK_ID_LABEL, Store, rfc3339

SUCCESS = ("CompletionsReached", "Reached expected number of succeeded pods")
FAILURE = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")


def _condition(kind: str, reason: str, message: str) -> dict[str, Any]:
    now = rfc3339()
    return {
        "type": kind,
        "status": "True",
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


class AutoController:
    def __init__(self, store: Store, tick_seconds: float = 0.01) -> None:
        self.store = store
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
            for key in keys - self._known:
                self._known.add(key)
                self._open[key] = self.store.jobs[key]["metadata"]["uid"]
            if settings.mode == "off":  # only the TTL-after-finished controller runs
                if settings.collect_finished:
                    self._collect_finished(now)
                return
            for key in list(self._open):
                job = self.store.jobs[key]
                if job["metadata"].get("deletionTimestamp"):
                    continue  # being deleted (held by a finalizer): the Job controller leaves it alone
                age_ms = (now - self.store.created_at.get(key, now)) * 1000
                container = job["spec"]["template"]["spec"]["containers"][0]
                terminal = settings.mode == "complete" or age_ms >= _duration_ms(container, settings)
                if terminal:
                    if container.get("image") == settings.fail_image:
                        self.store.set_job_status(*key, job_status("failed"))
                        self.store.add_pod(key[0], failed_pod(job))
                    else:
                        self.store.set_job_status(*key, job_status("succeeded"))
                    del self._open[key]
                elif age_ms >= settings.active_after_ms and not job["status"].get("active"):
                    self.store.set_job_status(*key, job_status("active"))
            if settings.collect_finished:
                self._collect_finished(time.monotonic())

    def _collect_finished(self, now: float) -> None:
        """The TTL-after-finished controller: delete each finished Job whose TTL has passed."""
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


def _duration_ms(container: dict[str, Any], settings: ControllerMode) -> float:
    """`complete_after_ms`, or N seconds for a container whose command is `["sleep", "N"]`."""
    command = container.get("command") or []
    if len(command) == 2 and command[0] == "sleep":
        try:
            return float(command[1]) * 1000
        except ValueError:
            pass
    return settings.complete_after_ms
