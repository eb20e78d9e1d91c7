"""Core/v1 Events in the fake API server: what the Job controller records, served with field selectors.

A real cluster's Job controller records a Warning Event `FailedCreate` on the Job when admission
(Pod Security, ResourceQuota, LimitRange, a webhook) refuses its pods; the Job itself only shows
`active: 0` and no conditions. Events are listed at `/api/v1/namespaces/{ns}/events` and
`/api/v1/events` with `fieldSelector` on `involvedObject.kind`, `involvedObject.name`,
`involvedObject.namespace`, `involvedObject.uid`, `reason` and `type` (`=`, `==`, `!=`,
comma-joined), paginated like Jobs. Repeats of the same event are aggregated (`count` and
`lastTimestamp` go up), as the client-go recorder does. Events never expire here (a cluster keeps
them for an hour).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from tests.fakekube.store import StatusError, Store, rfc3339

FIELDS: dict[str, Callable[[dict[str, Any]], str]] = {
    "involvedObject.kind": lambda e: str(e["involvedObject"].get("kind", "")),
    "involvedObject.name": lambda e: str(e["involvedObject"].get("name", "")),
    "involvedObject.namespace": lambda e: str(e["involvedObject"].get("namespace", "")),
    "involvedObject.uid": lambda e: str(e["involvedObject"].get("uid", "")),
    "reason": lambda e: str(e.get("reason", "")),
    "type": lambda e: str(e.get("type", "")),
    "metadata.name": lambda e: str(e["metadata"]["name"]),
    "metadata.namespace": lambda e: str(e["metadata"]["namespace"]),
}


def field_matcher(selector: str | None) -> Callable[[dict[str, Any]], bool]:
    """The predicate of an Event field selector; an unsupported field is a 400, as on a real server."""
    requirements: list[tuple[str, bool, str]] = []
    for part in (selector or "").split(","):
        part = part.strip()
        if not part:
            continue
        if "!=" in part:
            key, value, equal = *part.split("!=", 1), False
        else:
            key, _, value = part.replace("==", "=", 1).partition("=")
            equal = True
        if key not in FIELDS:
            raise StatusError(400, "BadRequest", f'"{key}" is not a known field selector: only "{", ".join(FIELDS)}"')
        requirements.append((key, equal, value))
    return lambda event: all((FIELDS[key](event) == value) == equal for key, equal, value in requirements)


class EventLog:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.events: dict[tuple[str, str], dict[str, Any]] = {}

    def reset(self) -> None:
        with self.store.lock:
            self.events.clear()

    def record(self, obj: dict[str, Any], kind: str, event_type: str, reason: str, message: str) -> dict[str, Any]:
        """Record (or aggregate into) an Event about `obj`, as `kind` (Job, Pod...)."""
        meta = obj["metadata"]
        namespace = meta["namespace"]
        with self.store.lock:
            for event in self.events.values():
                involved = event["involvedObject"]
                if (
                    involved.get("uid") == meta.get("uid")
                    and event["reason"] == reason
                    and event["message"] == message
                    and event["type"] == event_type
                ):
                    event["count"] += 1
                    event["lastTimestamp"] = rfc3339()
                    event["metadata"] = {**event["metadata"], "resourceVersion": self.store._next_rv()}
                    return dict(event)
            name = f"{meta['name']}.{uuid.uuid4().hex[:16]}"
            now = rfc3339()
            event = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "uid": str(uuid.uuid4()),
                    "resourceVersion": self.store._next_rv(),
                    "creationTimestamp": now,
                },
                "involvedObject": {
                    "kind": kind,
                    "namespace": namespace,
                    "name": meta["name"],
                    "uid": meta.get("uid", ""),
                    "apiVersion": obj.get("apiVersion", "v1"),
                    "resourceVersion": meta.get("resourceVersion", ""),
                },
                "reason": reason,
                "message": message,
                "source": {"component": "job-controller"},
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
                "type": event_type,
                "reportingComponent": "job-controller",
                "reportingInstance": "",
            }
            self.events[(namespace, name)] = event
            return dict(event)

    def list(self, namespace: str | None, field_selector: str | None, limit: int, token: str | None) -> dict[str, Any]:
        matches = field_matcher(field_selector)
        with self.store.lock:
            items = [e for (ns, _), e in self.events.items() if (namespace is None or ns == namespace) and matches(e)]
            return self.store._page("EventList", "v1", items, None, limit, token)

    def about(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """Every Event about the object `namespace/name` (a test's view)."""
        with self.store.lock:
            return [
                dict(e)
                for (ns, _), e in self.events.items()
                if ns == namespace and e["involvedObject"].get("name") == name
            ]
