"""A profile's `kueue:` key: validated at config load (one line per bad entry, naming the field), it wins
over the namespace's and the global Kueue mode in the Job nightwatch sends (and `render` shows), and
`owns_admission: false` keeps a Kueue-held task counted against nightwatch's own `max_in_flight`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nightwatch.adapters.kubernetes.jobbody import build_job_body
from nightwatch.adapters.kubernetes.settings import KubernetesSettings
from nightwatch.adapters.kubernetes.status import observe_job
from nightwatch.adapters.memory import FakeClock, FixedFence, MemoryJobRunner, MemoryQueueStates, MemoryTaskRepository
from nightwatch.app.config import ConfigError, load_settings
from nightwatch.app.usecases.dispatch import DispatchTasks
from nightwatch.domain.jobspec import LaunchRequest
from nightwatch.domain.kueue import KueueSettings
from nightwatch.domain.model import TaskId, TaskStatus
from nightwatch.domain.observation import JobObservation, JobPhase
from nightwatch.domain.ports import NewTask
from nightwatch.domain.profiles import ProfileCatalog, ignored_by_local_runner
from nightwatch.domain.queues import Queue, Queues
from nightwatch.domain.submission import SubmissionPolicy, validate_submission

PROFILES: dict[str, Any] = {
    "batch": {"kueue": {"queue_name": "batch-q", "priority_class": "low"}},
    "shared": {"kueue": {"queue_name": "shared-q", "owns_admission": False}},
    "plain": {},
}
NAMESPACE_KUEUE = KubernetesSettings(
    kueue=KueueSettings(queue_name="global-q", priority_class="high"),
    kueue_namespaces={"ml": KueueSettings(queue_name="ml-q")},
)


def body(profile: str | None, namespace: str = "default") -> dict[str, Any]:
    policy = SubmissionPolicy(frozenset({"default", "ml"}), ProfileCatalog.build(PROFILES, "default", {}))
    info: dict[str, Any] = {"image": "alpine"} | ({"profile": profile} if profile else {})
    valid = validate_submission("t", namespace, info, policy)
    request = LaunchRequest(TaskId(1), "t", namespace, valid.spec, valid.profile, valid.placement)
    return build_job_body(request, kueue=NAMESPACE_KUEUE.kueue_for(namespace))


def labels(job: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in job["metadata"]["labels"].items() if k.startswith(("kueue.", "nightwatch.io/kueue"))}


def test_the_profiles_kueue_wins_over_the_namespaces_and_the_global_one() -> None:
    for namespace in ("default", "ml"):
        job = body("batch", namespace)
        assert job["spec"]["suspend"] is True
        assert labels(job) == {"kueue.x-k8s.io/queue-name": "batch-q", "kueue.x-k8s.io/priority-class": "low"}
    # A profile without `kueue` leaves it to the configuration, as before.
    assert labels(body("plain", "ml")) == {"kueue.x-k8s.io/queue-name": "ml-q"}
    assert labels(body(None)) == {"kueue.x-k8s.io/queue-name": "global-q", "kueue.x-k8s.io/priority-class": "high"}


def test_a_profile_alone_turns_kueue_on() -> None:
    policy = SubmissionPolicy(frozenset({"default"}), ProfileCatalog.build(PROFILES, "default", {}))
    valid = validate_submission("t", "default", {"image": "alpine", "profile": "batch"}, policy)
    job = build_job_body(LaunchRequest(TaskId(1), "t", "default", valid.spec, valid.profile))  # no config Kueue
    assert job["spec"]["suspend"] is True and labels(job)["kueue.x-k8s.io/queue-name"] == "batch-q"
    plain = validate_submission("t", "default", {"image": "alpine", "profile": "plain"}, policy)
    job = build_job_body(LaunchRequest(TaskId(1), "t", "default", plain.spec, plain.profile))
    assert "suspend" not in job["spec"] and labels(job) == {}


def test_owns_admission_false_marks_the_job_and_its_task_reads_waiting_for_kueue() -> None:
    job = body("shared")
    assert labels(job) == {"kueue.x-k8s.io/queue-name": "shared-q", "nightwatch.io/kueue-counted": "true"}
    suspended = {**job, "status": {"conditions": [{"type": "Suspended", "status": "True", "reason": "JobSuspended"}]}}
    seen = observe_job(suspended)
    assert seen.queued_by_kueue and seen.kueue_counted
    assert seen.suspended_message == "Waiting for Kueue: JobSuspended"
    owned = observe_job({**body("batch"), "status": suspended["status"]})
    assert owned.queued_by_kueue and not owned.kueue_counted
    assert owned.suspended_message == "Queued by Kueue: JobSuspended"


def test_the_local_runner_names_kueue_among_the_fields_it_ignores() -> None:
    catalog = ProfileCatalog.build(PROFILES, "default", {})
    assert "kueue" in ignored_by_local_runner(catalog.profiles["batch"])
    assert "kueue" not in ignored_by_local_runner(catalog.profiles["plain"])


def test_config_refuses_bad_kueue_entries_one_line_each_naming_the_field(tmp_path: Any) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        json.dumps(
            {
                "profiles": {
                    "a": {"kueue": {"queue_name": "team a", "priority_class": "", "owns_admission": "yes"}},
                    "b": {"kueue": {"queue": "x"}},
                    "c": {"kueue": {"queue_name": "q" * 64}},
                    "ok": {"kueue": {"queue_name": "team-a.gpu_1", "priority_class": "p1"}},
                }
            }
        )
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert caught.value.lines == [
        "profiles.a.kueue.queue_name: 'team a' is not a label value (letters, digits, '-', '_' and '.', "
        "beginning and ending with a letter or digit)",
        "profiles.a.kueue.priority_class: String should have at least 1 character",
        "profiles.a.kueue.owns_admission: Input should be a valid boolean",
        "profiles.b.kueue.queue_name: Field required",
        "profiles.b.kueue.queue: Extra inputs are not permitted",
        "profiles.c.kueue.queue_name: String should have at most 63 characters",
    ]


# -- counting against max_in_flight, on the memory adapters ------------------------------------------
def leader(repo: MemoryTaskRepository, clock: FakeClock) -> DispatchTasks:
    """A fresh leader's dispatch under one queue that allows one task in flight."""
    queues = Queues((Queue("q", max_in_flight=1),))
    catalog = ProfileCatalog.build(PROFILES, "default", {})
    policy = SubmissionPolicy(frozenset({"default"}), catalog, queues=queues.names)
    fence = FixedFence(repo.advance_epoch())
    return DispatchTasks(
        repo, MemoryJobRunner(), clock, fence, policy=policy, queues=queues, queue_states=MemoryQueueStates()
    )


@pytest.mark.parametrize(("profile", "counted"), [("batch", False), ("shared", True)])
def test_a_kueue_held_task_counts_against_max_in_flight_only_if_kueue_does_not_own_admission(
    profile: str, counted: bool
) -> None:
    repo, clock = MemoryTaskRepository(), FakeClock()
    info = json.dumps({"image": "alpine", "profile": profile})
    first = repo.add(NewTask("first", "default", info), clock.now())
    second = repo.add(NewTask("second", "default", info), clock.now())
    assert leader(repo, clock)().launched == 1
    # What sync writes for the Job Kueue holds (the Job as built for this profile, as the cluster reports it).
    job = {**body(profile), "status": {"conditions": [{"type": "Suspended", "status": "True", "reason": "NoQuota"}]}}
    change = repo.get(first.id).observe(observe_job(job), clock.now())  # type: ignore[union-attr]
    assert change is not None
    repo.apply([change], epoch=repo.advance_epoch())
    held = repo.get(first.id)
    assert held is not None and held.status is TaskStatus.PENDING
    assert held.message == ("Waiting for Kueue: NoQuota" if counted else "Queued by Kueue: NoQuota")

    assert leader(repo, clock)().launched == (0 if counted else 1)
    waiting = repo.get(second.id)
    assert waiting is not None and waiting.status is (TaskStatus.NORMAL if counted else TaskStatus.PENDING)


def test_observation_without_kueue_is_unchanged() -> None:
    assert JobObservation(JobPhase.SUSPENDED, "R").suspended_message == "Suspended: R"
