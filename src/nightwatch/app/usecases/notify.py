"""SendNotifications: the leader-only watcher that POSTs the outbox's events to the configured webhooks.

Each tick takes the due entries (`Outbox.due`: per task in order, never one already being sent) and
hands them to a bounded pool of workers; the tick itself never waits for a receiver, so a receiver
that hangs (up to `timeout_seconds` per POST) or answers 500 holds one worker, delays no status write
(the outbox rows were written by `apply` already) and no other entry beyond the pool's size. An entry
is marked delivered only after every matching webhook answered 2xx, so a leader that dies between
the POST and that mark leaves it pending: its successor sends it again under the same delivery id
(at least once; receivers de-duplicate on `delivery_id`). Failed tries back off exponentially, capped,
up to `max_attempts`, then the entry is `failed` with the last error; `nightwatch notify list` shows it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from nightwatch.domain.errors import LeadershipLost, NightwatchError, RetryableError, TaskNotFound
from nightwatch.domain.model import Task
from nightwatch.domain.notifications import (
    DELIVERY_HEADER,
    NOTIFY_EVENTS,
    SIGNATURE_HEADER,
    DeliveryOutcome,
    DeliveryState,
    Notification,
    OutboxEntry,
    backoff,
    signature,
    webhook_key,
)
from nightwatch.domain.ports import Clock, Fence, LeaderStore, Outbox, WebhookPoster

logger = logging.getLogger(__name__)


class WebhookSettings(BaseModel):
    """One receiver (an entry of `notify.webhooks`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(pattern=r"^https?://\S+$")
    events: frozenset[str] = NOTIFY_EVENTS
    """Which events it gets: Succeeded, Failed, Cancelled, Retrying."""
    namespaces: frozenset[str] | None = None
    """Only tasks of these namespaces (None: all)."""
    users: frozenset[int] | None = None
    """Only tasks of these user ids (None: all)."""
    secret: SecretStr | None = None
    """Signs each body (`X-Nightwatch-Signature: sha256=<hex HMAC-SHA256>`); None sends it unsigned."""

    def model_post_init(self, _context: object) -> None:
        unknown = set(self.events) - NOTIFY_EVENTS
        if unknown:
            raise ValueError(f"events: unknown {sorted(unknown)}; choose from {sorted(NOTIFY_EVENTS)}")

    def wants(self, entry: OutboxEntry, task: Task) -> bool:
        return (
            entry.event in self.events
            and (self.namespaces is None or task.namespace in self.namespaces)
            and (self.users is None or task.user_id in self.users)
        )


class NotifySettings(BaseModel):
    """Where events go and how hard to try (the `notify:` configuration section)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    webhooks: tuple[WebhookSettings, ...] = ()
    max_attempts: int = Field(default=8, gt=0)
    """Tries per entry (all its webhooks together) before it is given up as `failed`."""
    backoff_seconds: float = Field(default=5.0, gt=0)
    """The wait after the first failed try; doubled after each further one, up to backoff_cap_seconds."""
    backoff_cap_seconds: float = Field(default=600.0, gt=0)
    timeout_seconds: float = Field(default=5.0, gt=0)
    """Per POST (connect, write and read each): a hung receiver holds a worker this long at most."""
    workers: int = Field(default=4, gt=0)
    """Entries being sent at once; a tick never waits for them."""
    batch_size: int = Field(default=100, gt=0)
    link_base_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    """The web page's address; the payload's `link` is `<base>/?task=<id>` (None: no link)."""


@dataclass
class NotifyReport:
    queued: int = 0
    """Entries handed to the workers this tick."""
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    """Outcomes recorded since the previous tick (counted into metrics by the service)."""


class SendNotifications:
    def __init__(
        self,
        outbox: Outbox,
        tasks: LeaderStore,
        poster: WebhookPoster,
        clock: Clock,
        fence: Fence,
        settings: NotifySettings | None = None,
    ) -> None:
        self._outbox = outbox
        self._tasks = tasks
        self._poster = poster
        self._clock = clock
        self._fence = fence
        self._settings = settings or NotifySettings()
        self._pool = ThreadPoolExecutor(self._settings.workers, thread_name_prefix="notify")
        self._sending: set[int] = set()
        self._done: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self) -> NotifyReport:
        epoch = self._fence.epoch()
        with self._lock:
            sending = frozenset(self._sending)
            done, self._done = self._done, Counter()
        report = NotifyReport(delivered=done["delivered"], retrying=done["retrying"], failed=done["failed"])
        # At most twice the pool's size queued: enough to keep every worker busy until the next tick.
        room = min(self._settings.batch_size, 2 * self._settings.workers - len(sending))
        if room <= 0:
            return report
        for entry in self._outbox.due(self._clock.now(), limit=room, exclude=sending):
            with self._lock:
                self._sending.add(entry.id)
            self._pool.submit(self._deliver, entry, epoch)
            report.queued += 1
        return report

    def close(self, wait: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=True)

    def drain(self) -> None:
        """Wait for every entry handed out so far (tests, shutdown)."""
        self.close(wait=True)
        self._pool = ThreadPoolExecutor(self._settings.workers, thread_name_prefix="notify")

    # -- one entry, on a worker ----------------------------------------------------------------
    def _deliver(self, entry: OutboxEntry, epoch: int) -> None:
        try:
            outcome = self._send(entry)
            self._outbox.record([outcome], epoch=epoch)
            kind = {DeliveryState.DELIVERED: "delivered", DeliveryState.FAILED: "failed"}.get(outcome.state, "retrying")
            with self._lock:
                self._done[kind] += 1
        except LeadershipLost:
            # A successor owns the outbox now; it sends this entry again under the same id.
            logger.info("notification %d not recorded: leadership lost", entry.id)
        except RetryableError as exc:
            # The database went away mid-delivery (an outage): not a bug; the entry is still pending.
            logger.warning("notification %d: %s; tried again next tick", entry.id, exc)
        except Exception:
            logger.exception("notification %d: unexpected error; tried again next tick", entry.id)
        finally:
            with self._lock:
                self._sending.discard(entry.id)

    def _send(self, entry: OutboxEntry) -> DeliveryOutcome:
        try:
            task = self._tasks.get(entry.task_id)
        except TaskNotFound:
            return DeliveryOutcome(entry.id, DeliveryState.FAILED, entry.tries, entry.delivered_to, None, "task gone")
        hooks = [w for w in self._settings.webhooks if w.wants(entry, task)]
        todo = [w for w in hooks if webhook_key(w.url) not in entry.delivered_to]
        delivered = set(entry.delivered_to)
        if not todo:
            return DeliveryOutcome(entry.id, DeliveryState.DELIVERED, entry.tries, frozenset(delivered), None)
        body = json.dumps(self._notification(entry, task).as_json(), separators=(",", ":")).encode("utf-8")
        errors: list[str] = []
        for hook in todo:
            headers = {"Content-Type": "application/json", DELIVERY_HEADER: str(entry.id)}
            if hook.secret is not None:
                headers[SIGNATURE_HEADER] = signature(body, hook.secret.get_secret_value())
            try:
                self._poster.post(hook.url, body, headers, timeout_seconds=self._settings.timeout_seconds)
            except NightwatchError as error:
                errors.append(f"{hook.url}: {error}")
            else:
                delivered.add(webhook_key(hook.url))
        tries = entry.tries + 1
        if not errors:
            return DeliveryOutcome(entry.id, DeliveryState.DELIVERED, tries, frozenset(delivered), None)
        why = "; ".join(errors)
        if tries >= self._settings.max_attempts:
            logger.warning("notification %d given up after %d tries: %s", entry.id, tries, why)
            return DeliveryOutcome(entry.id, DeliveryState.FAILED, tries, frozenset(delivered), None, why)
        wait = backoff(
            tries, base_seconds=self._settings.backoff_seconds, cap_seconds=self._settings.backoff_cap_seconds
        )
        return DeliveryOutcome(
            entry.id, DeliveryState.PENDING, tries, frozenset(delivered), self._clock.now() + wait, why
        )

    def _notification(self, entry: OutboxEntry, task: Task) -> Notification:
        base = self._settings.link_base_url
        return Notification(
            delivery_id=str(entry.id),
            task_id=int(task.id),
            name=task.name,
            namespace=task.namespace,
            user_id=task.user_id,
            status=entry.event,
            message=entry.message,
            attempt=entry.attempt,
            created_at=task.created_at,
            started_at=task.started_at,
            finished_at=task.finished_at,
            event_at=entry.created_at,
            link=f"{base.rstrip('/')}/?task={int(task.id)}" if base else None,
        )
