"""The detached supervisor of one local Job: `python -m nightwatch.adapters.local.supervisor JOBDIR`.

It plays the part the kubelet and the Job controller play in a cluster: it runs the command in
its own process group, retries it up to `backoffLimit` times, enforces `activeDeadlineSeconds`,
kills the group when the Job is deleted, and records the outcome in `result.json`. It runs in its
own session, so tasks keep running and their results are recorded while nightwatch restarts.

It inherits from the launcher an open, already flock-ed descriptor of `supervisor.lock` and keeps
it open (never touching it) until it exits: the lock is how nightwatch tells a live Job from one whose process vanished.

No secret reaches a task: the command's environment is `TASK_ENV_ALLOWLIST` taken from the
supervisor's own, plus the spec's `env` (which wins), never nightwatch's configuration (API tokens,
the database URL, Redis URLs, KUBECONFIG). The supervisor itself is started with the same
allow-list plus `SUPERVISOR_ENV_EXTRA` (see `supervisor_environment`), since the task, its child,
could read its environment in /proc.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nightwatch.adapters.local import jobdir
from nightwatch.adapters.local.events import notify

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.05
GRACE_SECONDS = 2.0
"""Between SIGTERM and SIGKILL when the deadline passes or the Job is deleted."""
RETRY_PAUSE_SECONDS = 1.0
"""Between attempts. Shorter than Kubernetes' 10 s exponential back-off: nothing here needs to cool down."""

TASK_ENV_ALLOWLIST = (
    "PATH",  # the supervisor resolves the command with the env's PATH; tasks' tools expect one
    "HOME",  # where tools look for their dotfiles and caches (an image sets it too)
    "LANG",  # the locale: text encoding of the task's output
    "LC_ALL",  # overrides LANG when the machine sets it
    "TZ",  # the time zone the task's timestamps are in
    "TMPDIR",  # where temporary files go (a read-only /tmp elsewhere)
)
"""The only variables a task inherits from the machine; everything else it gets comes from its `env`.
Nothing of nightwatch's own configuration is in it (NIGHTWATCH_*, KUBECONFIG, database or Redis URLs)."""
SUPERVISOR_ENV_EXTRA = ("PYTHONPATH",)
"""What the supervisor needs besides the allow-list to start: nightwatch's import path (a source checkout).
It is never passed on to the task."""


def task_environment(inherited: Mapping[str, str], spec_env: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """A task's whole environment: the allow-listed part of `inherited`, then the spec's `env` items."""
    env = {name: inherited[name] for name in TASK_ENV_ALLOWLIST if name in inherited}
    env.setdefault("PATH", os.defpath)
    env.update({item["name"]: item.get("value", "") for item in spec_env})
    return env


def supervisor_environment(inherited: Mapping[str, str]) -> dict[str, str]:
    """The environment to start a supervisor with: the task allow-list plus what Python needs to import us."""
    names = (*TASK_ENV_ALLOWLIST, *SUPERVISOR_ENV_EXTRA)
    return {name: inherited[name] for name in names if name in inherited}


@dataclass(frozen=True, slots=True)
class Outcome:
    phase: str
    exit_code: int | None
    reason: str
    message: str


class _Stop(Exception):
    """The Job was deleted: leave without writing a result (its directory is going away)."""


_terminated: list[int] = []
"""Signals asking the supervisor itself to stop (machine shutdown, an operator's kill)."""


def _on_terminate(signum: int, _frame: object) -> None:
    # Only note it: the polling loop kills the command's group, so no task outlives its supervisor.
    _terminated.append(signum)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if len(argv) not in (1, 2):
        logger.error("usage: python -m nightwatch.adapters.local.supervisor JOBDIR [EVENTS_SOCKET]")
        return 2
    _EVENTS[0] = argv[1] if len(argv) == 2 else ""
    # The directory may be renamed to the trash by `delete`; the working directory follows it.
    os.chdir(argv[0])
    # No SIGHUP handling needed: in a session of its own, it has no controlling terminal to hang up.
    # (SIG_IGN would also be inherited by the command, unlike a handler, which exec resets.)
    signal.signal(signal.SIGTERM, _on_terminate)
    signal.signal(signal.SIGINT, _on_terminate)
    spec = json.loads(Path(jobdir.SPEC).read_text(encoding="utf-8"))["spec"]
    try:
        outcome = supervise(spec)
    except _Stop:
        logger.info("the Job was deleted; stopping")
        return 0
    result = {
        "phase": outcome.phase,
        "exit_code": outcome.exit_code,
        "reason": outcome.reason,
        "message": outcome.message,
        "finished_at": datetime.now(UTC).isoformat(),
    }
    try:
        jobdir.write_atomically(Path(jobdir.RESULT), json.dumps(result))
    except OSError as exc:
        # Deleted under our feet (directory removed): nobody is left to read the result.
        logger.warning("could not record the result %s: %s", result, exc)
    _announce()
    return 0


SUPERVISOR_STOPPED = "SupervisorStopped"
"""The reason of a Job whose supervisor was told to stop (SIGTERM/SIGINT): the machine's doing."""


_EVENTS = [""]
"""The runner's change socket (see `events.py`), from the command line."""


def _announce() -> None:
    """Tell the runner this Job's state just changed (nobody listening is fine)."""
    task_id = jobdir.read_text(Path(jobdir.TASK_ID))
    if task_id is not None:
        notify(_EVENTS[0], task_id)


def supervise(spec: dict[str, Any]) -> Outcome:
    """Run the attempts; return how the Job ended. Raises _Stop when the Job was deleted."""
    argv = [*spec.get("command", ()), *spec.get("args", ())]
    env = task_environment(os.environ, spec.get("env", ()))
    deadline_seconds = spec.get("activeDeadlineSeconds")
    started = time.monotonic()
    deadline = started + deadline_seconds if deadline_seconds else None
    attempts = int(spec.get("backoffLimit", 0)) + 1
    log_path = Path(jobdir.OUTPUT)
    outcome = Outcome("failed", None, "Error", "the command never ran")
    for attempt in range(1, attempts + 1):
        _check_cancel()
        if _terminated:
            return _stopped(outcome.exit_code)
        offset = log_path.stat().st_size if log_path.exists() else 0
        code, deadline_hit, startable = _run_once(argv, env, deadline)
        tail = jobdir.output_tail(log_path, start=offset)
        if _terminated:
            return _stopped(code)
        if deadline_hit:
            message = "Job was active longer than specified deadline"
            return Outcome("failed", code, "DeadlineExceeded", f"{message}; output: {tail}" if tail else message)
        if code == 0:
            return Outcome("succeeded", 0, "Completed", _exit_message(0, tail))
        if not startable:
            # Could not even start: retrying cannot help (Kubernetes would also give up: StartError).
            return Outcome("failed", code, "Error", _exit_message(code, tail))
        outcome = Outcome("failed", code, "BackoffLimitExceeded", _exit_message(code, tail))
        logger.info("attempt %d/%d ended with exit code %s", attempt, attempts, code)
        if attempt < attempts:
            _sleep_until(time.monotonic() + RETRY_PAUSE_SECONDS, deadline)
            if deadline is not None and time.monotonic() >= deadline:
                return Outcome("failed", code, "DeadlineExceeded", "Job was active longer than specified deadline")
    return outcome


def _run_once(argv: list[str], env: dict[str, str], deadline: float | None) -> tuple[int, bool, bool]:
    """Run one attempt to its end: (exit code, whether the deadline killed it, whether it started)."""
    with open(jobdir.OUTPUT, "ab") as log:
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=jobdir.WORKDIR,
                env=env,
                start_new_session=True,  # its own process group: one killpg reaches its children too
            )
        except FileNotFoundError:
            log.write(f"command not found: {argv[0]}\n".encode())
            return 127, False, False
        except OSError as exc:
            log.write(f"cannot run {argv[0]}: {exc}\n".encode())
            return 126, False, False
        except ValueError as exc:
            # A NUL byte, an unencodable character or a '=' in an env name: the argv or environment
            # cannot be handed to exec at all. Say so, instead of dying with a traceback.
            log.write(f"cannot run {argv[0]!r}: {exc}\n".encode())
            return 126, False, False
    jobdir.write_atomically(Path(jobdir.PID), str(proc.pid))
    _announce()
    kill_at: float | None = None
    deadline_hit = cancelled = False
    while (code := proc.poll()) is None:
        now = time.monotonic()
        if kill_at is None and Path(jobdir.CANCEL).exists():
            cancelled, kill_at = True, now + GRACE_SECONDS
            _killpg(proc.pid, signal.SIGTERM)
        elif kill_at is None and _terminated:
            kill_at = now + GRACE_SECONDS
            _killpg(proc.pid, signal.SIGTERM)
        elif kill_at is None and deadline is not None and now >= deadline:
            deadline_hit, kill_at = True, now + GRACE_SECONDS
            _killpg(proc.pid, signal.SIGTERM)
        elif kill_at is not None and now >= kill_at:
            _killpg(proc.pid, signal.SIGKILL)
        time.sleep(POLL_SECONDS)
    # Like a pod's containers, whatever the command left running in its group ends with it.
    _killpg(proc.pid, signal.SIGKILL)
    if cancelled:
        raise _Stop
    return code, deadline_hit, True


def _stopped(code: int | None) -> Outcome:
    name = signal.Signals(_terminated[0]).name
    # The supervisor's loss, not the task's: reported so (SupervisorStopped is an infrastructure failure).
    return Outcome(
        "failed", code, SUPERVISOR_STOPPED, f"the local supervisor was stopped by {name}; the task was killed"
    )


def _exit_message(code: int, tail: str) -> str:
    if code < 0:
        head = f"killed by signal {signal.Signals(-code).name}" if -code in signal.valid_signals() else f"exit {code}"
    else:
        head = f"exit code {code}"
    return f"{head}: {tail}" if tail else head


def _killpg(pgid: int, sig: signal.Signals) -> None:
    # The group may already be empty (ProcessLookupError); nothing else is expected.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _check_cancel() -> None:
    if Path(jobdir.CANCEL).exists():
        raise _Stop


def _sleep_until(until: float, deadline: float | None) -> None:
    end = min(until, deadline) if deadline is not None else until
    while time.monotonic() < end and not _terminated:
        _check_cancel()
        time.sleep(POLL_SECONDS)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
