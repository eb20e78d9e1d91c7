"""`LocalJobRunner`: the embedded stand-in for Kubernetes, running each task as a local process.

Each Job is a directory under `state_dir` (see `jobdir`) looked after by a detached supervisor
process (see `supervisor`), so Jobs outlive nightwatch restarts and a restarted nightwatch adopts
them instead of running a task twice. The image is recorded, never pulled: the task's `command`
and `args` run directly on this machine, as nightwatch's user, with an allow-list of the machine's
environment (PATH, HOME, locale, TZ, TMPDIR: `supervisor.TASK_ENV_ALLOWLIST`) plus the spec's `env`,
never nightwatch's tokens or URLs. Running as the same user, a task can still read what that user can
read: this runner is for single-tenant use (docs/security.md).

A command that cannot be found is not refused at launch (PATH is resolved by the process that
execs it, with the task's env); the Job fails with "exit code 127: command not found: X".
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from nightwatch.adapters.local import jobdir
from nightwatch.adapters.local.events import LocalChanges
from nightwatch.adapters.local.logs import LocalJobLogs
from nightwatch.adapters.local.profile import local_view
from nightwatch.adapters.local.settings import LocalRunnerSettings
from nightwatch.adapters.local.supervisor import SUPERVISOR_STOPPED, supervisor_environment
from nightwatch.domain.errors import ForeignJob, JobInvalid, PermanentError, RetryableError
from nightwatch.domain.jobspec import LaunchRequest
from nightwatch.domain.model import TaskId
from nightwatch.domain.observation import JobObservation, JobPhase
from nightwatch.domain.ports import JobRef, LaunchResult

logger = logging.getLogger(__name__)

DELETE_WAIT_SECONDS = 0.5
"""How long `delete` waits for the supervisor to stop before leaving the rest to a later sweep."""
STALE_STAGING_SECONDS = 60.0
"""A staging directory older than this belongs to a launch that crashed half-way."""


class LocalJobRunner:
    """A `JobRunner` whose Jobs are supervised local processes, with their state in `local_state_dir`."""

    def __init__(self, settings: LocalRunnerSettings) -> None:
        self.state_dir = Path(settings.local_state_dir)
        self._staging = self.state_dir / jobdir.STAGING
        self._trash = self.state_dir / jobdir.TRASH
        try:
            for path in (self.state_dir, self._staging, self._trash):
                path.mkdir(parents=True, exist_ok=True)
            # mkdir succeeds on an existing read-only directory: prove we can write before any launch.
            tempfile.TemporaryFile(dir=self._staging).close()
        except OSError as exc:
            raise PermanentError(f"the local runner's state directory {self.state_dir} is not usable: {exc}") from exc
        self._children: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()
        self._changes = LocalChanges(self.state_dir)
        self.logs = LocalJobLogs(self.state_dir)
        """The `JobLogs` port over the same Job directories."""
        self._sweep(startup=True)

    # -- the port ---------------------------------------------------------------------------
    def launch(self, request: LaunchRequest) -> LaunchResult:
        spec, ignored = local_view(request)
        note = ""
        if ignored:
            note = f"the local runner ignores these fields of profile {request.profile.name}: {', '.join(ignored)}"
        request = dataclasses.replace(request, spec=spec, note=note)
        if not spec.command and not spec.args:
            raise JobInvalid(f"the local runner needs a command: image {spec.image} has no entrypoint here")
        final = self._job_dir(request.namespace, request.job_name)
        try:
            if final.exists():
                return dataclasses.replace(self._existing(request, final), note=note)
            return dataclasses.replace(self._create(request, final), note=note)
        except OSError as exc:
            raise RetryableError(f"could not start local Job {request.namespace}/{request.job_name}: {exc}") from exc

    def observe(self, refs: Sequence[JobRef]) -> Mapping[TaskId, JobObservation]:
        self._reap()
        result: dict[TaskId, JobObservation] = {}
        try:
            for ref in refs:
                result[ref.task_id] = self._observe_one(ref)
        except OSError as exc:
            raise RetryableError(f"could not read the local runner's state in {self.state_dir}: {exc}") from exc
        live = {t for t, o in result.items() if o.phase in (JobPhase.PENDING, JobPhase.ACTIVE)}
        self._changes.seen(live, result.keys() - live)
        return result

    # -- ChangeFeed: supervisors announce their state changes (see events.py) -------------------------
    @property
    def follows_changes(self) -> bool:
        return True

    def follow(self, namespaces: Collection[str], wake: Callable[[], None]) -> None:
        self._changes.follow(wake)

    def take_changes(self) -> set[TaskId]:
        return self._changes.take()

    def stop_following(self) -> None:
        self._changes.stop()

    def delete(self, ref: JobRef) -> None:
        try:
            path = self._job_dir(ref.namespace, ref.job_name)
        except JobInvalid:
            return  # no Job can have that name, so there is nothing to delete
        try:
            owner = jobdir.read_text(path / jobdir.TASK_ID)
            if owner is None:
                return  # already gone (or never ours to delete)
            if owner.strip() != str(ref.task_id):
                logger.warning("not deleting %s: it belongs to task %s, not %s", path, owner.strip(), ref.task_id)
                return
            # The marker tells the supervisor to kill the process group (TERM, then KILL after a grace).
            # It is written first, so a supervisor that is still starting never starts the command.
            jobdir.write_atomically(path / jobdir.CANCEL, "")
            # Renaming frees the Job's name at once; the supervisor's working directory follows it.
            os.rename(path, self._trash / f"{ref.namespace}.{ref.job_name}.{uuid.uuid4().hex}")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise RetryableError(f"could not delete local Job {ref.namespace}/{ref.job_name}: {exc}") from exc
        self._sweep(wait=DELETE_WAIT_SECONDS)

    def release(self, refs: Sequence[JobRef]) -> None:
        """Nothing to do: no one deletes a local Job's directory but `delete`, so no outcome is lost."""

    def held(self, namespace: str, *, unfinished: bool = False) -> list[JobRef]:
        """None: the local runner holds nothing for anyone (see `release`)."""
        return []

    def close(self) -> None:
        """Release what this instance holds. Running Jobs are left running: they outlive nightwatch."""
        self._changes.stop()
        self._sweep()

    # -- internals --------------------------------------------------------------------------
    def _job_dir(self, namespace: str, job_name: str) -> Path:
        for part in (namespace, job_name):
            # Names are DNS-1123 labels by the time they get here; refuse anything that could escape.
            if not part or part.startswith(".") or "/" in part or "\0" in part:
                raise JobInvalid(f"{part!r} cannot name a local Job directory")
        return self.state_dir / namespace / job_name

    def _existing(self, request: LaunchRequest, path: Path) -> LaunchResult:
        owner = jobdir.read_text(path / jobdir.TASK_ID)
        if owner is not None and owner.strip() == str(request.task_id):
            logger.info("adopting local Job %s/%s of task %s", request.namespace, request.job_name, request.task_id)
            return LaunchResult(request.job_name, adopted=True)
        raise ForeignJob(
            f"a Job named {request.job_name} already exists in {request.namespace} and was not created by nightwatch"
        )

    def _create(self, request: LaunchRequest, final: Path) -> LaunchResult:
        # Assemble the whole directory aside, then rename it into place: the rename is the atomic
        # uniqueness check (it fails on an existing, non-empty directory), and no reader ever sees
        # a Job without its task_id.
        staging = Path(tempfile.mkdtemp(dir=self._staging))
        lock_fd = os.open(staging / jobdir.LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            # Locked before the Job is visible and handed to the supervisor: there is no moment when
            # the Job exists, unlocked, and looks like a process that disappeared.
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            (staging / jobdir.TASK_ID).write_text(str(request.task_id), encoding="utf-8")
            (staging / jobdir.SPEC).write_text(_spec_json(request), encoding="utf-8")
            (staging / jobdir.WORKDIR).mkdir()
            final.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(staging, final)
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                shutil.rmtree(staging, ignore_errors=True)
                return self._existing(request, final)  # lost a race with another launch of that name
            try:
                self._spawn_supervisor(final, lock_fd)
            except OSError:
                # Not started: take the Job back so a retry starts afresh instead of adopting a dud.
                shutil.rmtree(final, ignore_errors=True)
                raise
        finally:
            os.close(lock_fd)
        logger.info("started local Job %s/%s for task %s", request.namespace, request.job_name, request.task_id)
        return LaunchResult(request.job_name)

    def _spawn_supervisor(self, path: Path, lock_fd: int) -> None:
        with (path / jobdir.SUPERVISOR_LOG).open("ab") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "nightwatch.adapters.local.supervisor", str(path), self._changes.path],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                pass_fds=(lock_fd,),
                env=supervisor_environment(os.environ),  # the task is its child: no secret here either
                start_new_session=True,  # detached: survives nightwatch and its terminal
            )
        with self._lock:
            self._children.append(child)

    def _observe_one(self, ref: JobRef) -> JobObservation:
        try:
            path = self._job_dir(ref.namespace, ref.job_name)
        except JobInvalid:
            return JobObservation.missing(ref.namespace, ref.job_name)
        owner = jobdir.read_text(path / jobdir.TASK_ID)
        if owner is None or owner.strip() != str(ref.task_id):
            return JobObservation.missing(ref.namespace, ref.job_name)
        result = jobdir.read_json(path / jobdir.RESULT)
        if result is None and jobdir.supervisor_alive(path):
            pid = jobdir.read_text(path / jobdir.PID)
            if pid is None:
                return JobObservation(JobPhase.PENDING, "Starting", "the local process is starting")
            return _noted(JobObservation(JobPhase.ACTIVE, "", f"local process {pid.strip()} running"), path)
        if result is None:
            # The supervisor may have written its result and exited between the two reads above.
            result = jobdir.read_json(path / jobdir.RESULT)
        if result is None:
            return JobObservation(
                JobPhase.FAILED,
                "ProcessDisappeared",
                "the local process disappeared without a result (machine restarted, or its supervisor was killed)",
                disruption="ProcessDisappeared",
            )
        return _noted(_from_result(result), path)

    def _reap(self) -> None:
        # Supervisors are our children until they exit; collect them so they do not linger as zombies.
        with self._lock:
            self._children = [child for child in self._children if child.poll() is None]

    def _sweep(self, *, wait: float = 0.0, startup: bool = False) -> None:
        """Remove deleted Jobs whose supervisor has exited (waiting up to `wait` s), and dead staging."""
        self._reap()
        until = time.monotonic() + wait
        try:
            while True:
                pending = 0
                for path in self._trash.iterdir():
                    if jobdir.supervisor_alive(path):
                        pending += 1
                    else:
                        shutil.rmtree(path, ignore_errors=True)
                if not pending or time.monotonic() >= until:
                    break
                time.sleep(0.05)
                self._reap()
            if startup:
                now = time.time()
                for path in self._staging.iterdir():
                    if now - path.stat().st_mtime > STALE_STAGING_SECONDS and not jobdir.supervisor_alive(path):
                        shutil.rmtree(path, ignore_errors=True)
        except OSError as exc:
            # Housekeeping only: the next sweep tries again.
            logger.warning("could not clean up %s: %s", self.state_dir, exc)


def _spec_json(request: LaunchRequest) -> str:
    return json.dumps(
        {
            "task_id": request.task_id,
            "namespace": request.namespace,
            "job_name": request.job_name,
            "created_at": datetime.now(UTC).isoformat(),
            "spec": request.spec.model_dump(mode="json", by_alias=True),
            "note": request.note,
        },
        indent=2,
    )


def _noted(observation: JobObservation, path: Path) -> JobObservation:
    """The observation with the Job's launch note (profile fields ignored) added to its message."""
    recorded = jobdir.read_json(path / jobdir.SPEC) or {}
    note = recorded.get("note") if isinstance(recorded, dict) else None
    if not note:
        return observation
    message = f"{observation.message} ({note})" if observation.message else str(note)
    return dataclasses.replace(observation, message=message)


def _from_result(result: Mapping[str, object]) -> JobObservation:
    if not result:
        return JobObservation(JobPhase.FAILED, "Error", "the local Job's result file is unreadable")
    reason = str(result.get("reason") or "")
    message = str(result.get("message") or "")
    if result.get("phase") == "succeeded":
        return JobObservation(JobPhase.SUCCEEDED, reason or "Completed", message)
    code = result.get("exit_code")
    exit_code: int | None = None
    if isinstance(code, int) and not isinstance(code, bool) and code != 0:
        # A process killed by a signal (negative in Python) reports 128 + n, as a container's shell does.
        exit_code = code if code > 0 else 128 - code
    # Only the supervisor's own loss is the machine's doing; a task killed by a signal of its own is not.
    disruption = reason if reason == SUPERVISOR_STOPPED else ""
    return JobObservation(JobPhase.FAILED, reason or "Error", message, exit_code=exit_code, disruption=disruption)
