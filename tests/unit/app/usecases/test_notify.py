"""SendNotifications on the memory adapters with a hand-written poster: which webhooks get an event,
backoff and giving up, and a retry that goes only to the webhooks that did not take it yet."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta

from nightwatch.adapters.memory import FakeClock, FixedFence, MemoryOutbox, MemoryTaskRepository
from nightwatch.app.usecases.notify import NotifySettings, SendNotifications, WebhookSettings
from nightwatch.domain.errors import RetryableError
from nightwatch.domain.notifications import DeliveryState, backoff, event_of, signature
from nightwatch.domain.ports import NewTask


class Poster:
    def __init__(self, failing: set[str] | None = None) -> None:
        self.sent: list[tuple[str, dict[str, object], dict[str, str]]] = []
        self.failing = failing or set()

    def post(self, url: str, body: bytes, headers: Mapping[str, str], *, timeout_seconds: float) -> None:
        self.sent.append((url, json.loads(body), dict(headers)))
        if url in self.failing:
            raise RetryableError("HTTP 500")


def world(
    *hooks: WebhookSettings, failing: set[str] | None = None, **settings: object
) -> tuple[MemoryTaskRepository, SendNotifications, Poster, FakeClock, int]:
    repo = MemoryTaskRepository()
    epoch = repo.advance_epoch()
    clock = FakeClock()
    poster = Poster(failing)
    config = NotifySettings(webhooks=hooks, backoff_seconds=10, backoff_cap_seconds=25, **settings)  # type: ignore[arg-type]
    send = SendNotifications(MemoryOutbox(repo), repo, poster, clock, FixedFence(epoch), config)
    return repo, send, poster, clock, epoch


def fail_task(repo: MemoryTaskRepository, epoch: int, name: str, namespace: str = "default", user: int = 1) -> None:
    task = repo.add(NewTask(name, namespace, "{}", user), FakeClock().now())
    repo.apply([task.fail("boom", FakeClock().now())], epoch=epoch)


def tick(send: SendNotifications) -> None:
    send()
    send.drain()


def test_only_matching_webhooks_get_an_event_and_the_body_is_signed() -> None:
    hooks = (
        WebhookSettings(url="http://a/", namespaces=frozenset({"default"}), secret="k" * 16),
        WebhookSettings(url="http://b/", users=frozenset({2})),
        WebhookSettings(url="http://c/", events=frozenset({"Succeeded"})),
    )
    repo, send, poster, _, epoch = world(*hooks)
    fail_task(repo, epoch, "t1")
    tick(send)
    assert [url for url, _, _ in poster.sent] == ["http://a/"]
    _, body, headers = poster.sent[0]
    raw = json.dumps(body, separators=(",", ":")).encode()
    assert headers["X-Nightwatch-Signature"] == signature(raw, "k" * 16)
    assert MemoryOutbox(repo).recent()[0].state is DeliveryState.DELIVERED


def test_a_retry_goes_only_to_the_webhooks_still_missing_it_with_capped_backoff() -> None:
    hooks = (WebhookSettings(url="http://ok/"), WebhookSettings(url="http://down/"))
    repo, send, poster, clock, epoch = world(*hooks, failing={"http://down/"}, max_attempts=4)
    fail_task(repo, epoch, "t1")
    outbox = MemoryOutbox(repo)
    tick(send)
    entry = outbox.recent()[0]
    assert (entry.state, entry.tries) == (DeliveryState.PENDING, 1)
    assert entry.next_attempt_at == clock.now() + timedelta(seconds=10)
    tick(send)  # not due yet
    assert len(poster.sent) == 2
    for wait in (10, 20, 25):  # 10, 20, then capped at 25
        clock.advance(wait)
        tick(send)
    assert [url for url, _, _ in poster.sent] == ["http://ok/", "http://down/"] + ["http://down/"] * 3
    final = outbox.recent()[0]
    assert (final.state, final.tries) == (DeliveryState.FAILED, 4) and "HTTP 500" in final.last_error


def test_backoff_doubles_and_caps() -> None:
    assert [backoff(n, base_seconds=1, cap_seconds=5).total_seconds() for n in (1, 2, 3, 4)] == [1, 2, 4, 5]


def test_the_events_worth_telling() -> None:
    repo = MemoryTaskRepository()
    task = repo.add(NewTask("e", "default", "{}"), FakeClock().now())
    start = task.copy().start("e", FakeClock().now())
    assert event_of(start) is None
    assert event_of(task.copy().cancel(FakeClock().now())) == "Cancelled"
