"""The fake API server's pure pieces: label selectors and patches."""

from __future__ import annotations

import pytest

from tests.fakekube.controller import AutoController, ControllerMode
from tests.fakekube.patches import PatchError, json_patch, merge_patch
from tests.fakekube.selectors import SelectorError, parse_selector
from tests.fakekube.store import Store


def test_selectors() -> None:
    labels = {"app": "x", "tier": "web"}
    assert parse_selector("")(labels)
    assert parse_selector("app=x,tier==web")(labels)
    assert not parse_selector("app=x,tier!=web")(labels)
    assert parse_selector("app, !gone")(labels)
    assert parse_selector("tier in (web, db),app notin (y)")(labels)
    assert not parse_selector("missing")(labels)
    with pytest.raises(SelectorError):
        parse_selector("=x")


def test_merge_patch_deletes_with_null_and_replaces_lists() -> None:
    target = {"a": {"b": 1, "c": 2}, "l": [1, 2]}
    assert merge_patch(target, {"a": {"b": None, "d": 3}, "l": [3]}) == {"a": {"c": 2, "d": 3}, "l": [3]}
    assert target == {"a": {"b": 1, "c": 2}, "l": [1, 2]}  # not mutated


def test_json_patch() -> None:
    doc = {"a": {"l": [1, 2]}}
    ops = [
        {"op": "add", "path": "/a/l/-", "value": 3},
        {"op": "replace", "path": "/a/l/0", "value": 0},
        {"op": "remove", "path": "/a/l/1"},
        {"op": "add", "path": "/a/k~1x", "value": True},
    ]
    assert json_patch(doc, ops) == {"a": {"l": [0, 3], "k/x": True}}
    with pytest.raises(PatchError):
        json_patch(doc, [{"op": "test", "path": "/a/l/0", "value": 9}])
    with pytest.raises(PatchError):
        json_patch(doc, [{"op": "remove", "path": "/nope/x"}])
    with pytest.raises(PatchError):  # a test of a path that does not exist fails (a 422), it does not crash
        json_patch(doc, [{"op": "test", "path": "/a/l/7", "value": 1}])


def _job(name: str, *, command: list[str], ttl: int | None = None) -> dict[str, object]:
    spec: dict[str, object] = {
        "template": {
            "spec": {"restartPolicy": "Never", "containers": [{"name": "task", "image": "busybox", "command": command}]}
        }
    }
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    return {"metadata": {"name": name}, "spec": spec}


def test_the_controller_finishes_jobs_after_their_sleep_and_collects_them_after_their_ttl() -> None:
    store = Store()
    controller = AutoController(store)
    controller.settings = ControllerMode("timed", active_after_ms=0, complete_after_ms=60_000, collect_finished=True)
    store.create_job("default", _job("quick", command=["sleep", "0"], ttl=0))
    store.create_job("default", _job("kept", command=["sleep", "0"]))
    store.create_job("default", _job("slow", command=["sleep", "60"], ttl=0))
    controller.step()  # quick and kept finish (their own 0 s); slow (60 s) is only active
    assert store.jobs[("default", "kept")]["status"]["succeeded"] == 1
    assert store.jobs[("default", "slow")]["status"].get("active") == 1
    # quick's TTL (0 s) has passed: deleted, as the TTL-after-finished controller of a cluster would
    assert ("default", "quick") not in store.jobs
    assert controller.collected == {("default", "quick")}
    assert ("default", "kept") in store.jobs  # no TTL: kept forever
