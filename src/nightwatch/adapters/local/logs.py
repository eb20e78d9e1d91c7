"""`JobLogs` for the local runner: a Job's `output.log` (stdout and stderr of every try).

A follow reads the file as it grows (polling: the supervisor is another process, and a poll of a
file costs nothing) and ends once the Job's `result.json` exists and everything before it was sent.
Nothing here is held between chunks, so a caller that stops reading costs no file handle.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from nightwatch.adapters.local import jobdir
from nightwatch.domain.errors import LogsUnavailable, RetryableError
from nightwatch.domain.ports import JobRef

CHUNK_BYTES = 16 * 1024


class LocalJobLogs:
    def __init__(
        self,
        state_dir: Path,
        *,
        poll_seconds: float = 0.2,
        quiet_seconds: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._state_dir = Path(state_dir)
        self._poll = poll_seconds
        self._quiet = quiet_seconds
        """A follow with no new output for this long ends (the caller looks at the task and goes on)."""
        self._sleep = sleep

    def read(self, ref: JobRef, *, tail_lines: int | None, limit_bytes: int) -> bytes:
        path = self._output(ref)
        try:
            with path.open("rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                # Read a bounded end only: a tail of lines needs no more than the byte cap either.
                handle.seek(max(0, size - limit_bytes))
                data = handle.read(limit_bytes)
        except FileNotFoundError:
            raise LogsUnavailable(
                f"local Job {ref.namespace}/{ref.job_name} has no output (yet, or any more)"
            ) from None
        except OSError as error:
            raise RetryableError(f"cannot read the output of local Job {ref.job_name}: {error}") from None
        if tail_lines is not None:
            lines = data.splitlines(keepends=True)
            data = b"".join(lines[-tail_lines:]) if tail_lines > 0 else b""
        return data

    def follow(self, ref: JobRef, *, tail_lines: int | None, limit_bytes: int) -> Iterator[bytes]:
        first = self.read(ref, tail_lines=tail_lines, limit_bytes=limit_bytes)
        path = self._output(ref)
        try:
            offset = path.stat().st_size
        except OSError:
            raise LogsUnavailable(f"local Job {ref.namespace}/{ref.job_name} has no output any more") from None
        return self._grow(path, first, offset, limit_bytes)

    def _grow(self, path: Path, first: bytes, offset: int, limit_bytes: int) -> Iterator[bytes]:
        budget = limit_bytes
        if first:
            yield first[:budget]
            budget -= len(first)
        quiet_since = time.monotonic()
        while budget > 0:
            ended = (path.parent / jobdir.RESULT).exists()  # looked at first: output before it is complete
            try:
                with path.open("rb") as handle:
                    handle.seek(offset)
                    chunk = handle.read(min(CHUNK_BYTES, budget))
            except OSError:
                return  # the Job's directory went (deleted): nothing more will come
            if chunk:
                offset += len(chunk)
                budget -= len(chunk)
                quiet_since = time.monotonic()
                yield chunk
                continue
            if ended or time.monotonic() - quiet_since >= self._quiet:
                return
            self._sleep(self._poll)

    def _output(self, ref: JobRef) -> Path:
        for part in (ref.namespace, ref.job_name):
            if not part or part.startswith(".") or "/" in part or "\0" in part:
                raise LogsUnavailable(f"{part!r} cannot name a local Job")
        return self._state_dir / ref.namespace / ref.job_name / jobdir.OUTPUT
