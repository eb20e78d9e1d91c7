"""What a task's users are told about it: the events an outbox row records, and their delivery.

`event_of(change)` is the one rule for which status changes are worth a notification: every move
to a terminal status, and a retry (Pending/Running back to Normal, the next attempt). `apply`
records one `OutboxEntry` per such change in the same transaction as the status write, so an event
is never lost and never invented; the sender (`app/usecases/notify.py`) delivers it at least once,
under the entry's id, which is stable across retries and failovers for receivers to de-duplicate.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from nightwatch.domain.model import IN_FLIGHT_STATUSES, StatusChange, TaskId, TaskStatus

RETRYING = "Retrying"
"""The event of a task sent back to Normal for its next attempt (it is no status of its own)."""

NOTIFY_EVENTS = frozenset({str(TaskStatus.SUCCEEDED), str(TaskStatus.FAILED), str(TaskStatus.CANCELLED), RETRYING})


def event_of(change: StatusChange) -> str | None:
    """The event a status change is (an entry of NOTIFY_EVENTS), or None for one nobody is told of."""
    if change.status.is_terminal:
        return str(change.status)
    if change.status is TaskStatus.NORMAL and change.expected_status in IN_FLIGHT_STATUSES:
        return RETRYING
    return None


class DeliveryState(StrEnum):
    PENDING = "pending"
    """Not yet delivered to every webhook it matches; tried again at `next_attempt_at`."""
    DELIVERED = "delivered"
    """Every matching webhook answered 2xx (or none matched: `tries` is then 0)."""
    FAILED = "failed"
    """Some webhook still refused it after `notify.max_attempts` tries; given up."""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One event of one task, as the outbox holds it, with its delivery's progress."""

    id: int
    task_id: TaskId
    attempt: int
    event: str
    message: str
    created_at: datetime
    state: DeliveryState = DeliveryState.PENDING
    tries: int = 0
    next_attempt_at: datetime | None = None
    delivered_to: frozenset[str] = field(default_factory=frozenset)
    """Keys of the webhooks that already took it (a retry goes only to the others)."""
    last_error: str = ""


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What one round of sending an entry did: recorded by `Outbox.record`."""

    entry_id: int
    state: DeliveryState
    tries: int
    delivered_to: frozenset[str]
    next_attempt_at: datetime | None
    last_error: str = ""


def backoff(tries: int, *, base_seconds: float, cap_seconds: float) -> timedelta:
    """The wait after the `tries`-th failed try: base * 2^(tries-1), capped."""
    return timedelta(seconds=min(cap_seconds, base_seconds * (2 ** max(tries - 1, 0))))


@dataclass(frozen=True, slots=True)
class Notification:
    """The body a webhook receives (JSON), built from an entry and its task."""

    delivery_id: str
    task_id: int
    name: str
    namespace: str
    user_id: int
    status: str
    message: str
    attempt: int
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    event_at: datetime
    link: str | None

    def as_json(self) -> dict[str, object]:
        def iso(when: datetime | None) -> str | None:
            return when.isoformat() if when is not None else None

        return {
            "delivery_id": self.delivery_id,
            "task_id": self.task_id,
            "name": self.name,
            "namespace": self.namespace,
            "user_id": self.user_id,
            "status": self.status,
            "message": self.message,
            "attempt": self.attempt,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "event_at": iso(self.event_at),
            "link": self.link,
        }


SIGNATURE_HEADER = "X-Nightwatch-Signature"
DELIVERY_HEADER = "X-Nightwatch-Delivery"


def signature(body: bytes, secret: str) -> str:
    """The `X-Nightwatch-Signature` value of a body: `sha256=` and the hex HMAC-SHA256 of the exact
    bytes sent, keyed with the webhook's secret (a receiver recomputes it and compares in constant time)."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def webhook_key(url: str) -> str:
    """A short stable name for a webhook (its URL's hash), as stored in `delivered_to`."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:12]
