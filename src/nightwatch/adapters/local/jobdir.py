"""The on-disk layout of one local Job, shared by the runner and the supervisor.

A Job is a directory `<state_dir>/<namespace>/<job_name>/`. The files in it are the only channel
between nightwatch and the detached supervisor, which is what lets a Job outlive a nightwatch
restart. Only the standard library is imported here: the supervisor loads this module at start-up
and should start fast.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import Any

TASK_ID = "task_id"
"""The owning task's id, written before the directory becomes visible (it *is* the ownership label)."""
SPEC = "spec.json"
"""The launch request: command, args, env, deadline, backoff limit (plus the image, only recorded)."""
LOCK = "supervisor.lock"
"""flock-ed for the supervisor's whole life: a held lock means "a supervisor is looking after this Job"."""
PID = "pid"
"""The pid (= process group id) of the command's current attempt; present once it has started."""
RESULT = "result.json"
"""Written atomically once, when the Job has ended: {phase, exit_code, reason, message, finished_at}."""
CANCEL = "cancel"
"""Marker written by `delete`: the supervisor kills the command and stops."""
OUTPUT = "output.log"
"""The command's combined stdout and stderr, across attempts."""
SUPERVISOR_LOG = "supervisor.log"
"""The supervisor's own stderr: a traceback lands here if it ever crashes."""
WORKDIR = "work"
"""The command's working directory, so that its files cannot clash with ours."""

STAGING = ".staging"
"""Where a Job directory is assembled before it is renamed into place (names never start with '.')."""
TRASH = ".trash"
"""Where deleted Jobs wait until their supervisor has exited, then are removed."""

TAIL_CHARS = 1000
"""How much of the output ends up in a task's message."""


def write_atomically(path: Path, text: str) -> None:
    """Write a file so that readers see either nothing or all of it (temp file, fsync, rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_text(path: Path) -> str | None:
    """A small file's content, or None if it does not exist (other OSErrors propagate)."""
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        # NotADirectoryError: something that is not a Job directory sits at the Job's path.
        return None


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object, None if absent; a corrupt file is reported as an empty dict."""
    text = read_text(path)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def supervisor_alive(job_dir: Path) -> bool:
    """True while the Job's supervisor holds its lock: immune to pid reuse, cleared by a reboot.

    flock locks belong to an open file description, so this probe conflicts with the supervisor's
    lock even when called from the process that launched it.
    """
    try:
        fd = os.open(job_dir / LOCK, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def output_tail(path: Path, start: int = 0, chars: int = TAIL_CHARS) -> str:
    """The last `chars` characters of a log written from byte offset `start` on, stripped."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            # 4 bytes per character at most in UTF-8: read just enough, never the whole log.
            handle.seek(max(start, size - 4 * chars))
            data = handle.read()
    except FileNotFoundError:
        return ""
    return data.decode("utf-8", errors="replace")[-chars:].strip()
