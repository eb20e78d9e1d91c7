"""LocalJobRunner against real processes: exit codes, deadlines, cancellation, restarts, env."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from nightwatch.adapters.local.runner import LocalJobRunner
from nightwatch.adapters.local.settings import LocalRunnerSettings
from nightwatch.adapters.local.supervisor import GRACE_SECONDS, TASK_ENV_ALLOWLIST
from nightwatch.domain.errors import JobInvalid, PermanentError
from nightwatch.domain.jobspec import JobSpec, LaunchRequest
from nightwatch.domain.model import TaskId
from nightwatch.domain.observation import JobObservation, JobPhase
from nightwatch.domain.ports import JobRef
from tests.support.local_harness import wait_for_phase


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def runner(state_dir: Path) -> Iterator[LocalJobRunner]:
    runner = LocalJobRunner(LocalRunnerSettings(local_state_dir=str(state_dir)))
    yield runner
    runner.close()


def shell(task_id: int, name: str, script: str, **fields: object) -> LaunchRequest:
    spec = JobSpec.model_validate({"image": "busybox", "command": ["sh", "-c", script], "backoffLimit": 0, **fields})
    return LaunchRequest(TaskId(task_id), name, "default", spec)


def ref_of(request: LaunchRequest) -> JobRef:
    return JobRef(request.task_id, request.namespace, request.job_name)


def run_to_end(runner: LocalJobRunner, request: LaunchRequest, phase: JobPhase) -> JobObservation:
    runner.launch(request)
    wait_for_phase(runner, ref_of(request), phase)
    return runner.observe([ref_of(request)])[request.task_id]


def alive(pid: int) -> bool:
    """True if the process exists and is not a zombie (an orphan may wait a while to be reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def wait_gone(pid: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while alive(pid):
        assert time.monotonic() < deadline, f"process {pid} is still running"
        time.sleep(0.05)


def read_pid(path: Path, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < deadline, f"{path} was never written"
        time.sleep(0.05)
    return int(path.read_text())


def test_failure_carries_the_exit_code_and_the_tail_of_the_output(runner: LocalJobRunner) -> None:
    script = "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done; echo boom >&2; exit 3"
    seen = run_to_end(runner, shell(1, "fails", script), JobPhase.FAILED)
    assert seen.reason == "BackoffLimitExceeded"
    assert seen.message.startswith("exit code 3: ")
    assert seen.message.endswith("line-299\nboom")
    assert "line-0\n" not in seen.message and len(seen.message) <= len("exit code 3: ") + 1000


def test_success_is_completed_with_the_output(runner: LocalJobRunner) -> None:
    seen = run_to_end(runner, shell(2, "works", "echo all good"), JobPhase.SUCCEEDED)
    assert (seen.reason, seen.message) == ("Completed", "exit code 0: all good")


def test_env_from_the_spec_reaches_the_process(runner: LocalJobRunner) -> None:
    request = shell(3, "env", 'echo "GREETING=$GREETING"', env={"GREETING": "hello world"})
    assert "GREETING=hello world" in run_to_end(runner, request, JobPhase.SUCCEEDED).message


NIGHTWATCH_SECRETS = {
    "NIGHTWATCH_API__TOKENS": '[{"token":"tok-0123456789abcdef-admin","user_id":1,"admin":true}]',
    "NIGHTWATCH_DATABASE__URL": "mysql+pymysql://nightwatch:db-password-s3cret@mysql:3306/nightwatch",
    "KUBECONFIG": "/etc/nightwatch/kubeconfig-secret",
}


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """nightwatch's configuration in the runner's own environment, plus a random secret."""
    secrets = {**NIGHTWATCH_SECRETS, "SOME_SECRET": f"secret-{uuid.uuid4().hex}"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    return secrets


def full_output(state_dir: Path, request: LaunchRequest) -> str:
    """The whole output file (the message only carries its tail)."""
    return (state_dir / request.namespace / request.job_name / "output.log").read_text()


def test_a_task_sees_the_allow_list_and_its_env_and_no_secret(
    runner: LocalJobRunner, state_dir: Path, secret_env: dict[str, str]
) -> None:
    request = LaunchRequest(
        TaskId(30),
        "printenv",
        "default",
        JobSpec.model_validate({"image": "busybox", "command": ["env"], "env": {"MY_SETTING": "mine"}}),
    )
    run_to_end(runner, request, JobPhase.SUCCEEDED)
    text = full_output(state_dir, request)
    for name, value in secret_env.items():
        assert name not in text and value not in text
    names = {line.split("=", 1)[0] for line in text.splitlines() if "=" in line}
    assert "MY_SETTING=mine" in text.splitlines() and "PATH" in names
    assert names <= {*TASK_ENV_ALLOWLIST, "MY_SETTING"}, names


def test_the_tasks_supervisor_holds_no_secret_either(
    runner: LocalJobRunner, state_dir: Path, secret_env: dict[str, str]
) -> None:
    # The supervisor is the task's parent, running as the same user: its environment is readable.
    request = shell(31, "parent-env", "tr '\\0' '\\n' < /proc/$PPID/environ")
    run_to_end(runner, request, JobPhase.SUCCEEDED)
    text = full_output(state_dir, request)
    assert "PATH=" in text
    for name, value in secret_env.items():
        assert name not in text and value not in text


def test_the_deadline_kills_the_whole_process_group(runner: LocalJobRunner, tmp_path: Path) -> None:
    child_pid = tmp_path / "child.pid"
    script = f"sleep 60 & echo $! > {child_pid}; wait"
    request = shell(4, "too-slow", script, activeDeadlineSeconds=1)
    runner.launch(request)
    child = read_pid(child_pid)
    wait_for_phase(runner, ref_of(request), JobPhase.FAILED)
    seen = runner.observe([ref_of(request)])[request.task_id]
    assert seen.reason == "DeadlineExceeded"
    assert seen.message.startswith("Job was active longer than specified deadline")
    wait_gone(child)


def test_delete_kills_a_running_task_and_frees_the_name(runner: LocalJobRunner, tmp_path: Path) -> None:
    pid_file = tmp_path / "task.pid"
    request = shell(5, "cancel-me", f"echo $$ > {pid_file}; exec sleep 60")
    runner.launch(request)
    wait_for_phase(runner, ref_of(request), JobPhase.ACTIVE)
    pid = read_pid(pid_file)
    started = time.monotonic()
    runner.delete(ref_of(request))
    assert time.monotonic() - started < 1.5  # the caller is not held for the whole grace period
    assert runner.observe([ref_of(request)])[request.task_id].phase is JobPhase.MISSING
    wait_gone(pid, timeout=GRACE_SECONDS + 10)  # SIGKILL after the grace; the rest is room for a loaded machine
    assert not runner.launch(request).adopted  # the name is free again
    runner.delete(ref_of(request))


def test_a_restarted_runner_sees_and_adopts_what_the_old_one_started(state_dir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    request = shell(6, "survivor", f"echo run >> {runs}; sleep 1")
    old = LocalJobRunner(LocalRunnerSettings(local_state_dir=str(state_dir)))
    assert not old.launch(request).adopted
    wait_for_phase(old, ref_of(request), JobPhase.ACTIVE)
    old.close()

    new = LocalJobRunner(LocalRunnerSettings(local_state_dir=str(state_dir)))
    assert new.observe([ref_of(request)])[request.task_id].phase is JobPhase.ACTIVE
    assert new.launch(request).adopted
    wait_for_phase(new, ref_of(request), JobPhase.SUCCEEDED)
    assert new.launch(request).adopted  # a finished Job is adopted too, never run again
    time.sleep(0.3)
    assert runs.read_text().splitlines() == ["run"]
    new.close()


def test_a_command_that_does_not_exist_fails_with_127(runner: LocalJobRunner) -> None:
    spec = JobSpec(image="busybox", command=("no-such-command-nightwatch",), backoffLimit=3)
    seen = run_to_end(runner, LaunchRequest(TaskId(7), "nope", "default", spec), JobPhase.FAILED)
    assert seen.reason == "Error"  # not retried: it cannot start however often we try
    assert seen.message == "exit code 127: command not found: no-such-command-nightwatch"


def test_a_spec_without_command_is_refused_at_launch(runner: LocalJobRunner) -> None:
    request = LaunchRequest(TaskId(8), "no-entrypoint", "default", JobSpec(image="python:3.12"))
    with pytest.raises(
        JobInvalid, match=r"the local runner needs a command: image python:3\.12 has no entrypoint"
    ) as caught:
        runner.launch(request)
    assert type(caught.value) is JobInvalid


@pytest.mark.parametrize(("namespace", "job_name"), [("default", ".hidden"), ("a/b", "job"), ("", "job")])
def test_a_name_that_cannot_be_a_job_directory_is_invalid(
    runner: LocalJobRunner, namespace: str, job_name: str
) -> None:
    request = LaunchRequest(TaskId(18), job_name, namespace, JobSpec(image="busybox", command=("true",)))
    with pytest.raises(JobInvalid, match="cannot name a local Job directory") as caught:
        runner.launch(request)
    assert type(caught.value) is JobInvalid
    assert runner.observe([ref_of(request)])[request.task_id].phase is JobPhase.MISSING
    runner.delete(ref_of(request))  # nothing to delete, and no error


def test_failures_are_retried_up_to_the_backoff_limit(runner: LocalJobRunner, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    seen = run_to_end(runner, shell(9, "flaky", f"echo run >> {runs}; exit 2", backoffLimit=2), JobPhase.FAILED)
    assert (seen.reason, seen.message) == ("BackoffLimitExceeded", "exit code 2")
    assert len(runs.read_text().splitlines()) == 3


def test_a_job_whose_process_vanished_is_failed(runner: LocalJobRunner, state_dir: Path) -> None:
    # What a reboot leaves behind: the directory, but no supervisor and no result.
    job = state_dir / "default" / "orphan"
    job.mkdir(parents=True)
    (job / "task_id").write_text("10")
    seen = runner.observe([JobRef(TaskId(10), "default", "orphan")])[TaskId(10)]
    assert seen.phase is JobPhase.FAILED and seen.reason == "ProcessDisappeared"
    assert "disappeared" in seen.message


def test_an_unusable_state_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(PermanentError, match=r"state directory .* is not usable"):
        LocalJobRunner(LocalRunnerSettings(local_state_dir=str(blocker / "state")))


def test_a_job_of_another_task_is_missing_and_not_deleted(runner: LocalJobRunner) -> None:
    request = shell(11, "mine", "echo ok")
    run_to_end(runner, request, JobPhase.SUCCEEDED)
    other = JobRef(TaskId(12), "default", "mine")
    assert runner.observe([other])[other.task_id].phase is JobPhase.MISSING
    runner.delete(other)
    assert runner.observe([ref_of(request)])[request.task_id].phase is JobPhase.SUCCEEDED


def test_a_stopped_supervisor_takes_its_task_down_and_says_so(runner: LocalJobRunner, tmp_path: Path) -> None:
    pid_file = tmp_path / "task.pid"
    request = shell(13, "shutdown", f"echo $$ > {pid_file}; exec sleep 60")
    runner.launch(request)
    pid = read_pid(pid_file)
    supervisor = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    os.kill(supervisor, signal.SIGTERM)
    wait_for_phase(runner, ref_of(request), JobPhase.FAILED)
    seen = runner.observe([ref_of(request)])[request.task_id]
    assert (seen.reason, seen.message) == (
        "SupervisorStopped",
        "the local supervisor was stopped by SIGTERM; the task was killed",
    )
    assert seen.disruption == "SupervisorStopped"  # the machine's doing: an infrastructure failure (issue 18)
    wait_gone(pid)


def test_odd_names_are_simply_missing(runner: LocalJobRunner) -> None:
    ref = JobRef(TaskId(14), "..", "etc")
    assert runner.observe([ref])[ref.task_id].phase is JobPhase.MISSING
    runner.delete(ref)


def test_delete_does_not_wait_for_a_task_that_ignores_sigterm(runner: LocalJobRunner, tmp_path: Path) -> None:
    pid_file = tmp_path / "task.pid"
    request = shell(15, "stubborn", f"trap '' TERM; echo $$ > {pid_file}; while :; do sleep 0.1; done")
    runner.launch(request)
    pid = read_pid(pid_file)
    started = time.monotonic()
    runner.delete(ref_of(request))
    assert time.monotonic() - started < 1.5  # the supervisor does the SIGKILL escalation, not the caller
    assert runner.observe([ref_of(request)])[request.task_id].phase is JobPhase.MISSING
    wait_gone(pid)


def test_a_supervisor_announces_its_start_and_its_result_to_the_following_runner(runner: LocalJobRunner) -> None:
    import threading

    woken = threading.Event()
    runner.follow({"default"}, woken.set)
    request = shell(41, "announced", "sleep 0.3")
    runner.launch(request)
    assert woken.wait(10.0), "no announcement of the start"
    assert TaskId(41) in runner.take_changes()
    woken.clear()
    assert woken.wait(10.0), "no announcement of the result"
    assert runner.take_changes() == {TaskId(41)}
    assert runner.observe([ref_of(request)])[TaskId(41)].phase is JobPhase.SUCCEEDED
    runner.stop_following()
    assert not (runner.state_dir / "events.sock").exists()
    assert runner.take_changes() == set()  # forgotten on step-down; a stopped feed hears nothing more
