"""Hostile input end to end: rows written by plain SQL, real dispatch/sync/cancel ticks, real processes.

SQL: a mix of hostile and good rows goes into SQLite and the real MariaDB by plain INSERT/UPDATE
(bypassing the repository); the use cases then run against the fake Kubernetes API server for a
few ticks. Whatever the rows hold, no tick raises, each hostile row runs or fails with a message
(or, with a status nightwatch does not know, is left exactly as it was and counted in the metric),
the good rows succeed, and every Job body the API server receives has nightwatch's fixed shape.

Local runner: commands and args full of shell metacharacters reach the process as exactly the argv
given (nothing goes through a shell), and src/ has no shell=True, os.system or os.popen at all.
"""

from __future__ import annotations

import ast
import json
import logging
import random as random_module
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import event, example, given
from hypothesis import strategies as st

from nightwatch.adapters.clock import SystemClock
from nightwatch.adapters.kubernetes import KubernetesJobRunner, KubernetesSettings
from nightwatch.adapters.local.runner import LocalJobRunner
from nightwatch.adapters.local.settings import LocalRunnerSettings
from nightwatch.adapters.memory import FixedFence
from nightwatch.adapters.sql import SqlTaskRepository
from nightwatch.app.metrics import TaskCountCollector
from nightwatch.app.usecases.cancel import CancelSettings, CancelTasks
from nightwatch.app.usecases.dispatch import DispatchReport, DispatchSettings, DispatchTasks
from nightwatch.app.usecases.sync import RetrySettings, SyncSettings, SyncTasks
from nightwatch.domain.jobspec import EnvVar, JobSpec, LaunchRequest
from nightwatch.domain.model import TaskId, TaskStatus
from nightwatch.domain.observation import JobObservation, JobPhase
from nightwatch.domain.ports import JobRef
from nightwatch.domain.retries import RetrySpec
from nightwatch.domain.submission import SubmissionPolicy
from tests.fakekube.controller import ControllerMode
from tests.fakekube.fixtures import api_client_for
from tests.fakekube.server import FakeKubeServer
from tests.support.hostile import (
    KNOWN_STATUSES,
    MARIADB,
    ODD_CHARS,
    POSTGRES,
    PROCESSES,
    SHELL_METACHARACTERS,
    SQLITE,
    HostileRow,
    assert_only_allow_listed,
    hostile_rows,
)
from tests.support.local_harness import wait_for_phase
from tests.support.sql_backends import empty_mariadb, empty_postgres, repository_at, sqlite_url

pytestmark = pytest.mark.hostile

SRC = Path(__file__).resolve().parents[2] / "src"

# -- the local runner: no shell anywhere ------------------------------------------------------------
ARGV_PRINTER = (sys.executable, "-c", "import json, os, sys; print(json.dumps([sys.argv[1:], os.environ.get('X')]))")
PROCESS_SECONDS = 60.0
"""Generous: a Job is two Python start-ups, on a shared 2-core machine."""


@pytest.fixture
def local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalJobRunner]:
    monkeypatch.chdir(tmp_path)  # a shell started anywhere by mistake would write PWNED under tmp_path
    runner = LocalJobRunner(LocalRunnerSettings(local_state_dir=str(tmp_path / "state")))
    yield runner
    runner.close()


def run_job(runner: LocalJobRunner, task_id: int, spec: JobSpec, phase: JobPhase) -> tuple[JobObservation, str]:
    """Launch one Job, wait for `phase`; its observation and its whole output."""
    request = LaunchRequest(TaskId(task_id), f"job-{task_id}", "default", spec)
    runner.launch(request)
    ref = JobRef(request.task_id, request.namespace, request.job_name)
    wait_for_phase(runner, ref, phase, timeout=PROCESS_SECONDS)
    output = runner.state_dir / request.namespace / request.job_name / "output.log"
    return runner.observe([ref])[ref.task_id], output.read_text(encoding="utf-8", errors="replace")


def printed_argv(output: str) -> tuple[list[str], str | None]:
    argv, x = json.loads(output.strip().splitlines()[-1])
    return argv, x


def assert_nothing_pwned(root: Path) -> None:
    found = [str(p) for p in root.rglob("*PWNED*")]
    assert not found, f"a shell ran: {found}"


NASTY_ARGS = [
    *SHELL_METACHARACTERS,
    "&& rm -rf /",
    "a\nb\nc",
    "",
    " ",
    "--help",
    "-c",
    "ünïcödé \u202e \U0001d51e",
    "'",
    '"',
    "\\n",
]


def test_args_with_shell_metacharacters_reach_the_process_as_exactly_the_argv_given(
    local: LocalJobRunner, tmp_path: Path
) -> None:
    spec = JobSpec(
        image="python",
        command=(*ARGV_PRINTER, ";", "touch", "PWNED"),
        args=tuple(NASTY_ARGS),
        env=(EnvVar(name="X", value="$(touch PWNED) `touch PWNED` ; touch PWNED"),),
        backoff_limit=0,
    )
    _, output = run_job(local, 1, spec, JobPhase.SUCCEEDED)
    assert printed_argv(output) == ([";", "touch", "PWNED", *NASTY_ARGS], "$(touch PWNED) `touch PWNED` ; touch PWNED")
    assert_nothing_pwned(tmp_path)


@pytest.mark.parametrize(
    "command",
    [["touch PWNED"], ["$(touch PWNED)"], ["`touch PWNED`"], ["sh -c 'touch PWNED'"], ["true; touch PWNED"]],
)
def test_a_command_that_looks_like_a_shell_line_is_one_program_name_and_is_not_found(
    local: LocalJobRunner, tmp_path: Path, command: list[str]
) -> None:
    seen, _ = run_job(local, 2, JobSpec(image="x", command=tuple(command), backoff_limit=0), JobPhase.FAILED)
    assert "exit code 127" in seen.message and "command not found" in seen.message
    assert_nothing_pwned(tmp_path)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"args": ("a\x00b",)}, "embedded null byte"),
        ({"env": (EnvVar.model_construct(name="X", value="a\x00b"),)}, "embedded null byte"),
        ({"env": (EnvVar.model_construct(name="A=B", value="x"),)}, "illegal environment variable name"),
        ({"args": ("\ud800",)}, "surrogates not allowed"),
    ],
    ids=["nul-in-args", "nul-in-env", "equals-in-env-name", "lone-surrogate"],
)
def test_an_argv_exec_cannot_take_fails_the_job_saying_why(
    local: LocalJobRunner, fields: dict[str, object], problem: str
) -> None:
    # JobSpec refuses all of these now (domain/jobspec.py); a spec.json written by an older version, or
    # by hand, may still hold them, so the supervisor keeps its own last line of defence.
    spec = JobSpec.model_construct(image="x", command=tuple(ARGV_PRINTER), backoff_limit=0, **fields)
    seen, _ = run_job(local, 3, spec, JobPhase.FAILED)
    # Not "the local process disappeared": the supervisor must not die with a traceback.
    assert seen.reason == "Error" and "exit code 126: cannot run" in seen.message and problem in seen.message, seen


_argv_items = st.one_of(st.sampled_from(NASTY_ARGS), st.text(ODD_CHARS.filter(lambda c: c != "\x00"), max_size=30))


@PROCESSES
@given(st.lists(_argv_items, max_size=6), st.text(ODD_CHARS.filter(lambda c: c != "\x00"), max_size=30))
def test_any_args_and_env_value_arrive_unchanged(
    tmp_path_factory: pytest.TempPathFactory, args: list[str], x: str
) -> None:
    root = tmp_path_factory.mktemp("argv")
    runner = LocalJobRunner(LocalRunnerSettings(local_state_dir=str(root / "state")))
    try:
        spec = JobSpec(
            image="python", command=ARGV_PRINTER, args=tuple(args), env=(EnvVar(name="X", value=x),), backoff_limit=0
        )
        _, output = run_job(runner, 4, spec, JobPhase.SUCCEEDED)
    finally:
        runner.close()
    assert printed_argv(output) == (args, x)
    assert_nothing_pwned(root)


def test_src_never_starts_a_process_through_a_shell() -> None:
    """Static: no shell=True, os.system, os.popen, subprocess.getoutput or create_subprocess_shell in src/."""
    shell_calls = {
        ("os", "system"),
        ("os", "popen"),
        ("subprocess", "getoutput"),
        ("subprocess", "getstatusoutput"),
        ("asyncio", "create_subprocess_shell"),
    }
    offences = []
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 20, "src/ was not found"
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(SRC)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Call):
                for keyword in node.keywords:
                    if keyword.arg == "shell" and not (
                        isinstance(keyword.value, ast.Constant) and keyword.value.value is False
                    ):
                        offences.append(f"{where}: shell={ast.unparse(keyword.value)}")
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and (node.value.id, node.attr) in shell_calls
            ):
                offences.append(f"{where}: {node.value.id}.{node.attr}")
            if isinstance(node, ast.ImportFrom) and node.module in ("os", "subprocess", "asyncio"):
                for alias in node.names:
                    if (node.module, alias.name) in shell_calls:
                        offences.append(f"{where}: from {node.module} import {alias.name}")
    assert not offences, offences


# -- rows written by plain SQL, ticks against the fake API server -----------------------------------
ALLOWED = frozenset({"default", "demo"})
GOOD_INFO = '{"image": "busybox", "command": ["true"]}'
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
TERMINAL = frozenset({"Succeeded", "Failed", "Cancelled"})
IMMUTABLE = ("name", "namespace", "info", "user_id", "created_at")
"""Columns nightwatch never writes: whatever else happens to a row, these stay as typed."""
INSERT = sa.text(
    "INSERT INTO task (id, name, namespace, info, status, user_id, cancel_requested) "
    "VALUES (:id, :name, :namespace, :info, :status, 1, :cancel)"
)
ROUNDS = 3


@pytest.fixture(scope="module")
def kube() -> Iterator[tuple[FakeKubeServer, KubernetesJobRunner]]:
    server = FakeKubeServer().start()
    runner = KubernetesJobRunner(api_client_for(server.url), KubernetesSettings(qps=0, request_timeout_seconds=10.0))
    try:
        yield server, runner
    finally:
        runner.close()
        server.stop()


@pytest.fixture(scope="module")
def sqlite_repo() -> Iterator[SqlTaskRepository]:
    with sqlite_url() as url, repository_at(url) as repo:
        yield repo


@pytest.fixture(scope="module")
def mariadb_repo() -> Iterator[SqlTaskRepository]:
    with repository_at(empty_mariadb()) as repo:
        yield repo


@pytest.fixture(scope="module")
def postgres_repo() -> Iterator[SqlTaskRepository]:
    with repository_at(empty_postgres()) as repo:
        yield repo


def rows_by_id(repo: SqlTaskRepository) -> dict[int, dict[str, Any]]:
    """Every row as the database holds it, read with plain SQL."""
    with repo.engine.connect() as conn:
        return {int(r.id): dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM task"))}


def insert_rows(repo: SqlTaskRepository, rows: list[tuple[int, HostileRow]]) -> list[int]:
    """Insert by plain SQL, one transaction per row; the ids the database accepted.

    MariaDB refuses some rows outright (a 200-character name in VARCHAR(45), a name equal to
    another under its case- and accent-insensitive collation): those never become tasks.
    """
    accepted = []
    for task_id, row in rows:
        values = {"id": task_id, "name": row.name, "namespace": row.namespace, "info": row.info}
        try:
            with repo.engine.begin() as conn:
                conn.execute(INSERT, {**values, "status": row.status, "cancel": row.cancel_requested})
        except sa.exc.DBAPIError:
            continue
        accepted.append(task_id)
    return accepted


def task_counts(repo: SqlTaskRepository) -> tuple[dict[str, float], float]:
    """What /metrics says: tasks per known status, and rows with a status nightwatch does not know."""
    families = {family.name: family for family in TaskCountCollector(repo, cache_seconds=0).collect()}
    known = {sample.labels["status"]: sample.value for sample in families["nightwatch_tasks"].samples}
    return known, families["nightwatch_tasks_unknown_status"].samples[0].value


def assert_counted(repo: SqlTaskRepository, rows: dict[int, dict[str, Any]]) -> None:
    """The metric counts exact statuses, and every other string as unknown ('Normal ' is not 'Normal')."""
    known, unknown = task_counts(repo)
    statuses = [r["status"] for r in rows.values()]
    assert unknown == sum(1 for s in statuses if s not in KNOWN_STATUSES), statuses
    assert known == {s.value: statuses.count(s.value) for s in TaskStatus}, statuses


@pytest.mark.parametrize("namespace", ["", "a/b", "Default", "x" * 64, "default\n"])
def test_an_in_flight_row_whose_namespace_no_job_can_have_fails_and_the_tick_goes_on(
    kube: tuple[FakeKubeServer, KubernetesJobRunner], namespace: str
) -> None:
    """Written by hand as Running there, it is the only in-flight task: listing its namespace failed,
    so the whole observation (and the sync tick) raised on every tick, and the row never ended."""
    server, runner = kube
    server.reset()
    with sqlite_url() as url, repository_at(url) as repo:
        with repo.engine.begin() as conn:
            conn.execute(
                INSERT,
                {"id": 1, "name": "by-hand", "namespace": namespace, "info": GOOD_INFO}
                | {"status": "Running", "cancel": False},
            )
        fence = FixedFence(repo.advance_epoch())
        report = SyncTasks(repo, runner, SystemClock(), fence)()
        task = repo.get(TaskId(1))
    assert report.changed == 1
    assert task.status is TaskStatus.FAILED and "no Job can exist for this task: namespace" in task.message
    assert server.counters["list"] == 0, "nothing to ask the API server about"


@pytest.fixture(params=["sqlite", "mariadb", "postgres"])
def fresh_repo(request: pytest.FixtureRequest) -> Iterator[SqlTaskRepository]:
    if request.param in ("mariadb", "postgres"):
        with repository_at(empty_mariadb() if request.param == "mariadb" else empty_postgres()) as repo:
            yield repo
    else:
        with sqlite_url() as url, repository_at(url) as repo:
            yield repo


def test_a_status_padded_with_spaces_is_not_even_read(
    fresh_repo: SqlTaskRepository, caplog: pytest.LogCaptureFixture
) -> None:
    """MariaDB compares 'Normal ' = 'Normal' (PAD SPACE, even under utf8mb4_bin). Selected, such rows
    would be skipped as unreadable, with a warning, by every tick; they must not match at all.
    PostgreSQL and SQLite compare text exactly already ('Normal ' and 'normal' are not 'Normal')."""
    with fresh_repo.engine.begin() as conn:
        statuses = ["Normal ", "Normal  ", "Pending ", "Running   ", "normal", "Normal"]
        for task_id, status in enumerate(statuses, start=1):
            row = {"id": task_id, "name": f"t{task_id}", "namespace": "default", "info": GOOD_INFO}
            conn.execute(INSERT, {**row, "status": status, "cancel": True})
    caplog.set_level(logging.DEBUG, logger="nightwatch")
    assert [t.id for t in fresh_repo.list_by_status([TaskStatus.NORMAL])] == [6]
    assert fresh_repo.list_by_status([TaskStatus.PENDING, TaskStatus.RUNNING]) == []
    assert [t.id for t in fresh_repo.list_cancel_requested()] == [6]
    assert not [r.getMessage() for r in caplog.records if "skipping task" in r.getMessage()]
    assert dict(fresh_repo.count_by_status()) == {
        "Normal ": 1,
        "Normal  ": 1,
        "Pending ": 1,
        "Running   ": 1,
        "normal": 1,
        "Normal": 1,
    }


def run_hostile_rows(
    repo: SqlTaskRepository,
    kube: tuple[FakeKubeServer, KubernetesJobRunner],
    hostile: list[HostileRow],
    good_count: int,
    shuffle: random_module.Random,
) -> None:
    server, runner = kube
    with repo.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM task"))
    server.reset()
    server.controller.step()  # on the empty store: forgets the Jobs of the previous example
    server.controller.settings = ControllerMode("complete")  # every Job succeeds when step() is called

    good = [HostileRow(f"good-{i}", "default", GOOD_INFO, "Normal") for i in range(good_count)]
    order = [*good, *hostile]
    shuffle.shuffle(order)  # good rows among the hostile ones, so paging past bad rows matters
    numbered = list(enumerate(order, start=1))
    # Good rows first, so a hostile row cannot take a good row's name; ids keep the shuffled order.
    accepted = insert_rows(repo, [(i, row) for i, row in numbered if row in good])
    assert len(accepted) == good_count
    accepted += insert_rows(repo, [(i, row) for i, row in numbered if row not in good])
    row_of = {i: row for i, row in numbered if i in accepted}
    event(f"hostile rows refused by the database: {len(row_of) < len(hostile) + good_count}")
    good_ids = {i for i, row in row_of.items() if row in good}
    frozen = rows_by_id(repo)  # the expected final state of every row nightwatch must leave alone
    before = dict(frozen)
    assert_counted(repo, before)

    fence = FixedFence(repo.advance_epoch())
    clock = SystemClock()
    # Small batches and pages, so that bad rows sit between good ones in every page.
    settings = DispatchSettings(batch_size=3, workers=2, write_batch_size=2)
    dispatch = DispatchTasks(repo, runner, clock, fence, settings, policy=SubmissionPolicy(ALLOWED))
    # No backoff: a row written by hand as Pending without a Job is an infrastructure failure (issue 18),
    # whose next attempt must launch within these rounds.
    no_wait = RetrySettings(default=RetrySpec(backoff_seconds=0, max_backoff_seconds=0))
    sync = SyncTasks(repo, runner, clock, fence, SyncSettings(page_size=3, write_batch_size=2), retry=no_wait)
    cancel = CancelTasks(repo, runner, clock, fence, CancelSettings(batch_size=3))
    dispatched: list[DispatchReport] = []
    for round_ in range(ROUNDS):
        dispatched.append(dispatch())
        if round_ == 0:
            # People also rewrite statuses by hand while nightwatch runs.
            with repo.engine.begin() as conn:
                for task_id, row in row_of.items():
                    if row.later_status is not None:
                        conn.execute(
                            sa.text("UPDATE task SET status = :s WHERE id = :id"),
                            {"s": row.later_status, "id": task_id},
                        )
            frozen |= {i: r for i, r in rows_by_id(repo).items() if row_of[i].later_status is not None}
        server.controller.step()
        sync()
        cancel()

    assert not [e for report in dispatched for e in report.errors]
    after = rows_by_id(repo)
    assert set(after) == set(row_of), "rows appeared or disappeared"
    for task_id, row in row_of.items():
        final, typed = after[task_id], before[task_id]
        left_alone = row.later_status is not None or row.status not in KNOWN_STATUSES or row.status in TERMINAL
        if left_alone:
            assert final == frozen[task_id], f"row {task_id} ({row!r}) was touched"
            event("hostile row: left alone")
            continue
        assert {c: final[c] for c in IMMUTABLE} == {c: typed[c] for c in IMMUTABLE}, row
        if task_id in good_ids:
            assert final["status"] == "Succeeded", (final, row)
            continue
        assert final["status"] in TERMINAL, f"row {task_id} ({row!r}) neither ran nor failed: {final}"
        if final["status"] == "Failed":
            assert (final["message"] or "").strip(), f"row {task_id} failed without saying why"
        event(f"hostile row: {final['status']}")

    for body in server.created_bodies():
        assert_only_allow_listed(body)
        assert DNS1123_LABEL.fullmatch(body["metadata"]["name"]) and body["metadata"]["namespace"] in ALLOWED

    assert_counted(repo, after)


_examples = (st.lists(hostile_rows(), max_size=10), st.integers(1, 4), st.randoms(use_true_random=False))


class _Reversed(random_module.Random):
    """Puts the good rows last, behind every hostile one."""

    def shuffle(self, x: list[Any]) -> None:  # type: ignore[override]
        x.reverse()


_PADDED_BY_HAND = [
    # MariaDB compares VARCHARs with PAD SPACE even under utf8mb4_bin: 'Normal ' = 'Normal'. Enough of
    # them ahead of the good rows fill a whole page of the listing.
    HostileRow("pad-1", "default", GOOD_INFO, "Normal "),
    HostileRow("pad-2", "default", GOOD_INFO, "Normal  "),
    HostileRow("pad-3", "demo", GOOD_INFO, "Normal   ", cancel_requested=True),
    HostileRow("pad-4", "default", GOOD_INFO, "Normal    ", cancel_requested=True),
    HostileRow("pad-5", "default", GOOD_INFO, "Running "),
    HostileRow("pad-6", "default", GOOD_INFO, "Pending "),
    HostileRow("pad-7", "default", GOOD_INFO, "Running  "),
    HostileRow("lower", "default", GOOD_INFO, "normal"),
    HostileRow("upper", "default", GOOD_INFO, "RUNNING"),
    HostileRow("relabelled", "default", GOOD_INFO, "Normal", later_status="pending"),
    HostileRow("relabelled-pad", "default", GOOD_INFO, "Normal", later_status="Running "),
]
_NASTY_BY_HAND = [
    HostileRow("deep", "default", "[" * 10_000, "Normal"),
    HostileRow("huge", "default", '{"image":"a","args":["' + "x" * 1_000_000 + '"]}', "Normal"),
    HostileRow("newline\n", "default", GOOD_INFO, "Normal"),
    HostileRow("sqli", "default", "'; DROP TABLE task; --", "Normal"),
    HostileRow("'; DROP TABLE task; --", "default", GOOD_INFO, "Normal"),
    HostileRow("hand-pending", "default", GOOD_INFO, "Pending"),
    HostileRow("hand-running", "a/b", GOOD_INFO, "Running"),
    HostileRow("null-info", "default", None, "Normal"),
    HostileRow(
        "extras",
        "default",
        json.dumps(
            {
                "image": "a",
                "hostNetwork": True,
                "serviceAccountName": "admin",
                "securityContext": {"privileged": True},
                "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
                "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
            }
        ),
        "Normal",
    ),
]


@SQLITE
@given(*_examples)
@example(_PADDED_BY_HAND, 2, _Reversed())
@example(_NASTY_BY_HAND, 2, _Reversed())
def test_hostile_rows_on_sqlite(
    sqlite_repo: SqlTaskRepository,
    kube: tuple[FakeKubeServer, KubernetesJobRunner],
    hostile: list[HostileRow],
    good_count: int,
    shuffle: random_module.Random,
) -> None:
    run_hostile_rows(sqlite_repo, kube, hostile, good_count, shuffle)


@MARIADB
@given(*_examples)
@example(_PADDED_BY_HAND, 2, _Reversed())
@example(_NASTY_BY_HAND, 2, _Reversed())
def test_hostile_rows_on_mariadb(
    mariadb_repo: SqlTaskRepository,
    kube: tuple[FakeKubeServer, KubernetesJobRunner],
    hostile: list[HostileRow],
    good_count: int,
    shuffle: random_module.Random,
) -> None:
    run_hostile_rows(mariadb_repo, kube, hostile, good_count, shuffle)


@POSTGRES
@given(*_examples)
@example(_PADDED_BY_HAND, 2, _Reversed())
@example(_NASTY_BY_HAND, 2, _Reversed())
def test_hostile_rows_on_postgres(
    postgres_repo: SqlTaskRepository,
    kube: tuple[FakeKubeServer, KubernetesJobRunner],
    hostile: list[HostileRow],
    good_count: int,
    shuffle: random_module.Random,
) -> None:
    """PostgreSQL refuses a NUL in text outright: such rows never become tasks."""
    run_hostile_rows(postgres_repo, kube, hostile, good_count, shuffle)


# -- hand-written rows only dynamic typing allows (SQLite) -----------------------------------------
_SQLITE_ODDITIES = [
    # (what, name, info, status, extra columns): SQL expressions, exactly as someone would type them.
    ("version-garbage-1", "'v1'", f"'{GOOD_INFO}'", "'Normal'", {"version": "'zz'"}),
    ("version-garbage-2", "'v2'", f"'{GOOD_INFO}'", "'Normal'", {"version": "'zz'"}),
    ("version-garbage-3", "'v3'", f"'{GOOD_INFO}'", "'Normal'", {"version": "'zz'", "cancel_requested": "1"}),
    ("user-garbage", "'u1'", f"'{GOOD_INFO}'", "'Normal'", {"user_id": "'abc'"}),
    ("info-blob", "'b1'", "X'FF'", "'Normal'", {}),
    ("info-bad-utf8", "'b2'", "CAST(X'7B22FF' AS TEXT)", "'Normal'", {}),
    ("name-bad-utf8", "CAST(X'FF' AS TEXT)", f"'{GOOD_INFO}'", "'Normal'", {}),
    ("status-bad-utf8", "'b3'", f"'{GOOD_INFO}'", "CAST(X'FF' AS TEXT)", {}),
    ("status-blob", "'b4'", f"'{GOOD_INFO}'", "X'4E6F726D616C'", {}),
    ("info-integer", "'i1'", "42", "'Normal'", {}),
    ("name-integer", "42", f"'{GOOD_INFO}'", "'Normal'", {}),
]
_LEFT_ALONE = {"version-garbage-1", "version-garbage-2", "version-garbage-3", "user-garbage"}
_LEFT_ALONE |= {"status-bad-utf8", "status-blob"}  # unknown statuses


def test_rows_of_the_wrong_type_on_sqlite_fail_or_are_left_alone_and_block_nobody(
    kube: tuple[FakeKubeServer, KubernetesJobRunner],
) -> None:
    server, runner = kube
    server.reset()
    server.controller.step()
    server.controller.settings = ControllerMode("complete")
    with sqlite_url() as url, repository_at(url) as repo:
        with repo.engine.begin() as conn:
            for task_id, (_, name, info, status, extra) in enumerate(_SQLITE_ODDITIES, start=1):
                columns = ", ".join(["id", "name", "namespace", "info", "status", *extra])
                values = ", ".join([str(task_id), name, "'default'", info, status, *extra.values()])
                conn.exec_driver_sql(f"INSERT INTO task ({columns}) VALUES ({values})")
            for good in range(2):
                conn.execute(
                    INSERT,
                    {"id": 100 + good, "name": f"good-{good}", "namespace": "default"}
                    | {"info": GOOD_INFO, "status": "Normal", "cancel": False},
                )
        before = rows_by_id(repo)
        fence, clock = FixedFence(repo.advance_epoch()), SystemClock()
        settings = DispatchSettings(batch_size=3, workers=2, write_batch_size=2)
        dispatch = DispatchTasks(repo, runner, clock, fence, settings, policy=SubmissionPolicy(ALLOWED))
        sync = SyncTasks(repo, runner, clock, fence, SyncSettings(page_size=3))
        cancel = CancelTasks(repo, runner, clock, fence, CancelSettings(batch_size=3))
        for _ in range(ROUNDS):
            dispatch()
            server.controller.step()
            sync()
            cancel()
        after = rows_by_id(repo)
        assert_counted(repo, after)
        _, unknown = task_counts(repo)

    assert [after[100]["status"], after[101]["status"]] == ["Succeeded", "Succeeded"]
    for task_id, (what, *_) in enumerate(_SQLITE_ODDITIES, start=1):
        if what in _LEFT_ALONE:
            assert after[task_id] == before[task_id], what
        elif what == "name-integer":
            assert after[task_id]["status"] == "Succeeded", what  # 42 is stored as '42': a fine name
        else:
            assert after[task_id]["status"] == "Failed" and after[task_id]["message"].strip(), (what, after[task_id])
    assert unknown == 2  # the undecodable status and the BLOB one
