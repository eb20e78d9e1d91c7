"""Deleting Jobs as the API server and the garbage collector do: finalizers, propagation, preconditions.

A DELETE on an object without finalizers removes it at once (its pods go too with Background or
Foreground propagation; Orphan keeps them). An object with `metadata.finalizers` only gets
`metadata.deletionTimestamp` (and `deletionGracePeriodSeconds: 0`) and stays, listed and gettable,
until a patch empties the list; then it is removed. Foreground propagation adds the
`foregroundDeletion` finalizer until the Job's pods are gone: the fake's garbage collector removes them
at once and drops the finalizer, unless `Store.defer_garbage_collection` is set (then a test calls
`collect_garbage()` to let the collector run). A create of a name whose object is being deleted is
answered by the store with 409 "object is being deleted". A UID precondition (`preconditions.uid`, as
the TTL-after-finished controller sends) that does not match is a 409 Conflict.

Functions here run with the store's lock held; they are the store's, split out to keep `store.py` small.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakekube.store import Key, Store

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"


def is_being_deleted(obj: dict[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def delete_job(store: Store, key: Key, propagation: str | None, preconditions: dict[str, Any] | None) -> dict[str, Any]:
    """The DELETE of a stored Job: the answer body (a Status if it is gone, else the dying object)."""
    from tests.fakekube.store import StatusError, _details, rfc3339

    namespace, name = key
    job = store.jobs[key]
    meta = job["metadata"]
    wanted_uid = (preconditions or {}).get("uid")
    if wanted_uid is not None and wanted_uid != meta["uid"]:
        raise StatusError(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on jobs.batch "{name}": Precondition failed: '
            f"UID in precondition: {wanted_uid}, UID in object meta: {meta['uid']}",
            _details(name, "jobs"),
        )
    if not is_being_deleted(job):
        finalizers = list(meta.get("finalizers") or [])
        if propagation == "Foreground" and FOREGROUND not in finalizers:
            finalizers.append(FOREGROUND)
        if finalizers:
            meta["finalizers"] = finalizers
            meta["deletionTimestamp"] = rfc3339()
            meta["deletionGracePeriodSeconds"] = 0
            meta["resourceVersion"] = store._next_rv()
    if propagation in ("Background", "Foreground") and not store.defer_garbage_collection:
        _delete_pods_of(store, namespace, job)
    if not store.defer_garbage_collection:
        _drop_finalizer(store, key, FOREGROUND)
    if key in store.jobs and (store.jobs[key]["metadata"].get("finalizers") or []):
        return copy.deepcopy(store.jobs[key])
    remove_job(store, key)
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {**_details(name, "jobs"), "uid": meta["uid"]},
    }


def collect_garbage(store: Store) -> None:
    """What the garbage collector does for every Job in Foreground deletion: delete its pods, then
    drop `foregroundDeletion` (the Job goes once no other finalizer is left)."""
    for key, job in list(store.jobs.items()):
        if is_being_deleted(job) and FOREGROUND in (job["metadata"].get("finalizers") or []):
            _delete_pods_of(store, key[0], job)
            _drop_finalizer(store, key, FOREGROUND)


def after_patch(store: Store, key: Key, before: dict[str, Any], after: dict[str, Any]) -> None:
    """Patches keep the deletion fields; a dying object takes no new finalizer, and goes when it has none."""
    from tests.fakekube.store import StatusError, _details

    old_meta, new_meta = before["metadata"], after["metadata"]
    if "finalizers" in new_meta and not new_meta["finalizers"]:
        del new_meta["finalizers"]  # `omitempty`: the API server never shows an empty list
    for field in ("deletionTimestamp", "deletionGracePeriodSeconds"):
        if field in old_meta:
            new_meta[field] = old_meta[field]
        else:
            new_meta.pop(field, None)
    if is_being_deleted(before):
        added = set(new_meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
        if added:
            raise StatusError(
                422,
                "Invalid",
                f'Job.batch "{key[1]}" is invalid: metadata.finalizers: Forbidden: '
                "no new finalizers can be added if the object is being deleted, found new finalizers "
                f"{sorted(added)}",
                _details(key[1], "jobs"),
            )


def remove_if_released(store: Store, key: Key) -> None:
    job = store.jobs.get(key)
    if job is not None and is_being_deleted(job) and not (job["metadata"].get("finalizers") or []):
        remove_job(store, key)


def remove_job(store: Store, key: Key) -> None:
    store.jobs.pop(key, None)
    store.created_at.pop(key, None)
    store.created_wall.pop(key, None)
    store.finished_at.pop(key, None)


def _drop_finalizer(store: Store, key: Key, finalizer: str) -> None:
    job = store.jobs.get(key)
    if job is None:
        return
    finalizers = job["metadata"].get("finalizers") or []
    if finalizer in finalizers:
        job["metadata"]["finalizers"] = [f for f in finalizers if f != finalizer]
        if not job["metadata"]["finalizers"]:
            del job["metadata"]["finalizers"]
        job["metadata"]["resourceVersion"] = store._next_rv()
        remove_if_released(store, key)


def _delete_pods_of(store: Store, namespace: str, job: dict[str, Any]) -> None:
    from tests.fakekube.store import TASK_ID_LABEL

    uid = job["metadata"]["uid"]
    name = job["metadata"]["name"]
    task_id = job["metadata"].get("labels", {}).get(TASK_ID_LABEL)
    for pod_key, pod in list(store.pods.items()):
        labels = pod["metadata"].get("labels", {})
        if pod_key[0] == namespace and (
            labels.get("controller-uid") == uid
            or labels.get("batch.kubernetes.io/job-name") == name
            or (task_id is not None and labels.get(TASK_ID_LABEL) == task_id)
        ):
            del store.pods[pod_key]
