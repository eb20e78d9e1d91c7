"""nightwatch's hold on its Jobs: the `nightwatch.io/outcome` finalizer, and how it is removed.

Every Job nightwatch creates carries the finalizer, so neither the TTL-after-finished controller nor
a user's `kubectl delete` can make the Job (and its status, the task's outcome) disappear before
nightwatch has written that outcome to the task's row: a deletion only sets `deletionTimestamp`, and
the Job stays readable. Once the row is terminal, nightwatch removes the finalizer (`release`) and the
cluster collects the Job as it would have.

The removal is one JSON patch that tests the task-id label and the finalizer's position before
removing it: it never touches another task's Job or another controller's finalizer, and needs no
read first. nightwatch puts its finalizer first, and the API server and controllers append theirs
(`foregroundDeletion`, `orphan`), so index 0 is right nearly always; when a test fails (422, or 409)
the adapter reads the Job and patches at the index it finds. Pure functions only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nightwatch.adapters.kubernetes.jobbody import OUTCOME_FINALIZER, TASK_ID_LABEL

FINISHED_CONDITIONS = frozenset({"Complete", "Failed", "SuccessCriteriaMet", "FailureTarget"})


def _pointer_token(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def release_patch(task_id: int, index: int = 0) -> list[dict[str, Any]]:
    """The JSON patch that removes nightwatch's finalizer at `index` from task `task_id`'s Job."""
    return [
        {"op": "test", "path": f"/metadata/labels/{_pointer_token(TASK_ID_LABEL)}", "value": str(task_id)},
        {"op": "test", "path": f"/metadata/finalizers/{index}", "value": OUTCOME_FINALIZER},
        {"op": "remove", "path": f"/metadata/finalizers/{index}"},
    ]


def finalizers_of(job: Mapping[str, Any]) -> list[str]:
    value = (job.get("metadata") or {}).get("finalizers") or []
    return [f for f in value if isinstance(f, str)] if isinstance(value, list) else []


def is_held(job: Mapping[str, Any]) -> bool:
    """True while nightwatch's finalizer keeps the Job (and its outcome) in the cluster."""
    return OUTCOME_FINALIZER in finalizers_of(job)


def is_dying(job: Mapping[str, Any]) -> bool:
    """True once a deletion was asked for (by the TTL controller, a user, nightwatch's cancel)."""
    return bool((job.get("metadata") or {}).get("deletionTimestamp"))


def is_finished(job: Mapping[str, Any]) -> bool:
    """A Job with a true terminal condition: its status is the task's outcome."""
    conditions = (job.get("status") or {}).get("conditions") or ()
    return any(
        isinstance(c, dict) and c.get("type") in FINISHED_CONDITIONS and c.get("status") == "True" for c in conditions
    )
