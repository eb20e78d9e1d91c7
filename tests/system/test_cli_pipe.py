"""`nightwatch list | head`: a reader that goes away early is not an error (no traceback, exit 0)."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

from nightwatch.adapters.sql import SqlTaskRepository, create_engine_for, init_database
from nightwatch.domain.ports import NewTask
from tests.support.nwprocess import NIGHTWATCH, Nightwatch


def test_list_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    nw = Nightwatch(tmp_path)
    init_database(nw.env["NIGHTWATCH_DATABASE__URL"])
    engine = create_engine_for(nw.env["NIGHTWATCH_DATABASE__URL"])
    repository = SqlTaskRepository(engine)
    now = datetime.now(UTC)
    for n in range(3000):  # more JSON than a pipe buffer holds, so the writer meets the closed pipe
        repository.add(NewTask(f"pipe-{n}", "default", '{"image": "busybox"}'), now)
    engine.dispose()

    process = subprocess.Popen(
        [*NIGHTWATCH, "list", "--json", "--limit", "3000"],
        cwd=tmp_path,
        env=nw.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()  # what `head -1` does after its line
    code = process.wait(60)
    errors = process.stderr.read().decode()
    assert b'"pipe-2999"' in first  # newest first
    assert (code, errors) == (0, "")
