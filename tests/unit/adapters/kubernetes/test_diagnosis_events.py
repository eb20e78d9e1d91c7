"""FailedCreate Events read into a Job's diagnosis: newest wins, matched by uid, long messages cut."""

from __future__ import annotations

from typing import Any

from nightwatch.adapters.kubernetes.diagnosis import MAX_EVENT_CHARS, creation_failure_of, creation_failures


def event(uid: str, message: str, when: str, *, reason: str = "FailedCreate", kind: str = "Job") -> dict[str, Any]:
    return {
        "involvedObject": {"kind": kind, "name": "x", "uid": uid},
        "reason": reason,
        "message": message,
        "lastTimestamp": when,
    }


def test_the_newest_failed_create_of_each_job_wins() -> None:
    failures = creation_failures(
        [
            event("u1", "Error creating: old", "2026-01-01T00:00:01Z"),
            event("u1", "Error creating: new", "2026-01-01T00:00:05Z"),
            event("u2", "Error creating:  spaced\nout", "2026-01-01T00:00:02Z"),
            event("u3", "Created pod: x", "2026-01-01T00:00:02Z", reason="SuccessfulCreate"),
            event("u4", "Error creating: a pod's", "2026-01-01T00:00:02Z", kind="ReplicaSet"),
        ]
    )
    assert failures == {"u1": "FailedCreate: Error creating: new", "u2": "FailedCreate: Error creating: spaced out"}
    assert (
        creation_failure_of(failures, {"metadata": {"uid": "u1", "name": "x"}}) == "FailedCreate: Error creating: new"
    )
    assert creation_failure_of(failures, {"metadata": {"uid": "other", "name": "x"}}) == ""


def test_a_long_pod_security_message_is_cut() -> None:
    (text,) = creation_failures([event("u", "forbidden: " + "violation, " * 500, "t")]).values()
    assert len(text) == len("FailedCreate: ") + MAX_EVENT_CHARS and text.endswith("...")


def test_new_style_events_without_last_timestamp_use_their_series_or_event_time() -> None:
    older = {**event("u", "Error creating: older", ""), "eventTime": "2026-01-01T00:00:01.000000Z"}
    newer = {**event("u", "Error creating: newer", ""), "series": {"lastObservedTime": "2026-01-01T00:00:09.000000Z"}}
    assert creation_failures([newer, older]) == {"u": "FailedCreate: Error creating: newer"}
