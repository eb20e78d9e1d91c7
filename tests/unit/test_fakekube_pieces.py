"""The fake API server's pure pieces: label selectors and patches."""

from __future__ import annotations

import pytest

from tests.fakekube.patches import PatchError, json_patch, merge_patch
from tests.fakekube.selectors import SelectorError, parse_selector


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
