"""Webhook notifications end to end: the outbox rows `apply` writes, the sender watcher, the httpx
poster, and a real receiver on a free port (tests/support/receiver.py), on SQLite.

Checked: the payload and its HMAC signature, retries after 500s with backoff, a hanging receiver
that delays neither status writes nor other deliveries, per-task order, and one delivery id per
event across a leader that dies between the status write and the POST.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from nightwatch.adapters.clock import SystemClock
from nightwatch.adapters.memory import FixedFence
from nightwatch.adapters.sql.outbox import SqlOutbox
from nightwatch.adapters.webhook import HttpxWebhookPoster
from nightwatch.app.usecases.notify import NotifySettings, SendNotifications, WebhookSettings
from nightwatch.domain.model import StatusChange, TaskId, TaskStatus
from nightwatch.domain.notifications import RETRYING, DeliveryState
from nightwatch.domain.ports import NewTask, TaskRepository
from tests.support.receiver import Receiver
from tests.support.sql_backends import sqlite_repository
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

INFO = '{"image": "alpine", "command": ["true"]}'
SECRET = "s3cret-s3cret-s3cret"


@pytest.fixture
def repo() -> Iterator[TaskRepository]:
    with sqlite_repository() as repository:
        yield repository


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def now() -> datetime:
    return datetime.now(UTC)


def finish(repo: TaskRepository, epoch: int, name: str, namespace: str = "default", *, fail: bool = True) -> TaskId:
    task = repo.add(NewTask(name=name, namespace=namespace, info=INFO, user_id=3), now())
    repo.apply([task.start(name, now())], epoch=epoch)
    task = repo.get(task.id)
    change = task.fail("exit 1", now()) if fail else task.cancel(now())
    repo.apply([change], epoch=epoch)
    return task.id


def sender(
    repo: TaskRepository, epoch: int, poster: Any, *hooks: WebhookSettings, **settings: Any
) -> SendNotifications:
    config = NotifySettings(
        webhooks=hooks,
        **{"backoff_seconds": 0.05, "timeout_seconds": 1.0, "link_base_url": "https://nw.example"} | settings,
    )
    return SendNotifications(SqlOutbox(repo.engine), repo, poster, SystemClock(), FixedFence(epoch), config)  # type: ignore[attr-defined]


def run_until(send: SendNotifications, done: Any, timeout: float = 10.0) -> None:
    def tick() -> bool:
        send()
        return bool(done())

    wait_until(tick, timeout, interval=0.05, what="deliveries")


def test_the_payload_is_signed_and_carries_the_task(repo: TaskRepository, receiver: Receiver) -> None:
    epoch = repo.advance_epoch()
    receiver.secrets["/hook"] = SECRET
    task_id = finish(repo, epoch, "signed")
    send = sender(repo, epoch, HttpxWebhookPoster(), WebhookSettings(url=receiver.url("/hook"), secret=SECRET))
    run_until(send, lambda: receiver.at("/hook"))
    send.drain()
    [got] = receiver.at("/hook")
    assert got.signed_ok is True
    body = got.body
    assert (body["task_id"], body["name"], body["namespace"], body["user_id"]) == (task_id, "signed", "default", 3)
    assert (body["status"], body["message"], body["attempt"]) == ("Failed", "exit 1", 1)
    assert body["link"] == f"https://nw.example/?task={task_id}"
    assert body["finished_at"] and body["started_at"] and body["event_at"]
    assert got.headers["X-Nightwatch-Delivery"] == body["delivery_id"]
    [entry] = SqlOutbox(repo.engine).recent()  # type: ignore[attr-defined]
    assert entry.state is DeliveryState.DELIVERED and entry.tries == 1 and str(entry.id) == body["delivery_id"]


def test_a_wrong_secret_fails_the_receivers_check(repo: TaskRepository, receiver: Receiver) -> None:
    epoch = repo.advance_epoch()
    receiver.secrets["/hook"] = SECRET
    finish(repo, epoch, "badsig")
    send = sender(repo, epoch, HttpxWebhookPoster(), WebhookSettings(url=receiver.url("/hook"), secret="other-secret"))
    run_until(send, lambda: receiver.at("/hook"))
    assert receiver.at("/hook")[0].signed_ok is False


def test_500s_are_retried_with_the_same_delivery_id_then_given_up(repo: TaskRepository, receiver: Receiver) -> None:
    epoch = repo.advance_epoch()
    receiver.failures_left["/flaky"] = 2
    receiver.failures_left["/down"] = 1000
    finish(repo, epoch, "flaky")
    hooks = (WebhookSettings(url=receiver.url("/flaky")), WebhookSettings(url=receiver.url("/down")))
    send = sender(repo, epoch, HttpxWebhookPoster(), *hooks, max_attempts=4, backoff_seconds=0.2)
    outbox = SqlOutbox(repo.engine)  # type: ignore[attr-defined]
    run_until(send, lambda: outbox.recent()[0].state is not DeliveryState.PENDING)
    send.drain()
    flaky, down = receiver.at("/flaky"), receiver.at("/down")
    assert len(flaky) == 3  # two 500s, then 200: not sent again after that
    assert len(down) == 4  # max_attempts
    assert len({r.body["delivery_id"] for r in flaky + down}) == 1
    gaps = [b.at - a.at for a, b in itertools.pairwise(down)]
    assert gaps[0] >= 0.2 and gaps[2] > gaps[0] * 2  # exponential backoff: 0.2 s, 0.4 s, 0.8 s (ticks add jitter)
    [entry] = outbox.recent()
    assert entry.state is DeliveryState.FAILED and entry.tries == 4 and "HTTP 500" in entry.last_error


def test_a_hanging_receiver_delays_no_status_write_and_no_other_delivery(
    repo: TaskRepository, receiver: Receiver
) -> None:
    epoch = repo.advance_epoch()
    receiver.hanging.add("/hang")
    hooks = (
        WebhookSettings(url=receiver.url("/hang"), namespaces=frozenset({"slow"})),
        WebhookSettings(url=receiver.url("/fast"), namespaces=frozenset({"fast"})),
    )
    send = sender(repo, epoch, HttpxWebhookPoster(), *hooks, timeout_seconds=5.0, workers=3)
    for i in range(2):
        finish(repo, epoch, f"slow-{i}", "slow")
    send()  # both slow entries now hang on a worker each, for up to timeout_seconds
    wait_until(lambda: len(receiver.at("/hang")) == 2, 5, what="the hung POSTs")
    started = time.monotonic()
    fast_id = finish(repo, epoch, "fast-0", "fast")  # a status write while receivers hang
    assert time.monotonic() - started < 1.0
    send()  # to the free worker; the tick never waits for the hung ones
    assert time.monotonic() - started < 1.0
    wait_until(lambda: receiver.at("/fast"), 4, what="the fast delivery")
    assert receiver.at("/fast")[0].body["task_id"] == fast_id


def test_each_tasks_events_arrive_in_order_even_when_the_first_is_retried(
    repo: TaskRepository, receiver: Receiver
) -> None:
    epoch = repo.advance_epoch()
    receiver.failures_left["/ordered"] = 1
    task = repo.add(NewTask(name="ordered", namespace="default", info=INFO), now())
    repo.apply([task.start("ordered", now())], epoch=epoch)
    pending = repo.get(task.id)
    retry = StatusChange(
        pending.id, TaskStatus.PENDING, pending.version, TaskStatus.NORMAL, "retrying", "ordered", None, None
    )
    repo.apply([retry], epoch=epoch)
    repo.apply([repo.get(task.id).start("ordered", now())], epoch=epoch)
    repo.apply([repo.get(task.id).fail("second attempt failed", now())], epoch=epoch)
    send = sender(repo, epoch, HttpxWebhookPoster(), WebhookSettings(url=receiver.url("/ordered")))
    run_until(send, lambda: len({r.body["delivery_id"] for r in receiver.at("/ordered")}) == 2)
    statuses = [r.body["status"] for r in receiver.at("/ordered")]
    assert statuses == [RETRYING, RETRYING, "Failed"]  # the first one's 500 and retry, then the second


class _DyingPoster:
    """A leader that is paused before its POST and dies (its replica killed) when it wakes."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.wake = threading.Event()

    def post(self, url: str, body: bytes, headers: Mapping[str, str], *, timeout_seconds: float) -> None:
        self.entered.set()
        self.wake.wait(10)
        raise RuntimeError("replica killed before the POST")


class _PostThenDie:
    """A leader that POSTs and dies before it records the delivery."""

    def __init__(self, real: HttpxWebhookPoster) -> None:
        self.real = real

    def post(self, url: str, body: bytes, headers: Mapping[str, str], *, timeout_seconds: float) -> None:
        self.real.post(url, body, headers, timeout_seconds=timeout_seconds)
        raise RuntimeError("replica killed after the POST, before recording it")


def test_a_leader_killed_before_the_post_leaves_the_event_to_its_successor_under_the_same_id(
    repo: TaskRepository, receiver: Receiver
) -> None:
    first_epoch = repo.advance_epoch()
    task_id = finish(repo, first_epoch, "failover")  # the status write and its outbox row
    hook = WebhookSettings(url=receiver.url("/once"))
    dying = _DyingPoster()
    old = sender(repo, first_epoch, dying, hook)
    old()
    assert dying.entered.wait(5)
    second_epoch = repo.advance_epoch()  # a successor took over while the old leader was paused
    new = sender(repo, second_epoch, HttpxWebhookPoster(), hook)
    run_until(new, lambda: receiver.at("/once"))
    dying.wake.set()
    old.drain()
    new.drain()
    [got] = receiver.at("/once")
    assert got.body["task_id"] == task_id
    [entry] = SqlOutbox(repo.engine).recent()  # type: ignore[attr-defined]
    assert entry.state is DeliveryState.DELIVERED and str(entry.id) == got.body["delivery_id"]


def test_a_leader_killed_after_the_post_makes_its_successor_resend_the_same_id(
    repo: TaskRepository, receiver: Receiver
) -> None:
    first_epoch = repo.advance_epoch()
    finish(repo, first_epoch, "resend")
    hook = WebhookSettings(url=receiver.url("/dup"))
    old = sender(repo, first_epoch, _PostThenDie(HttpxWebhookPoster()), hook)
    old()
    old.drain()
    second_epoch = repo.advance_epoch()
    new = sender(repo, second_epoch, HttpxWebhookPoster(), hook)
    run_until(new, lambda: len(receiver.at("/dup")) == 2)
    new.drain()
    ids = [r.body["delivery_id"] for r in receiver.at("/dup")]
    assert len(ids) == 2 and len(set(ids)) == 1  # at least once; the receiver de-duplicates on the id
    for _ in range(3):
        new()
    new.drain()
    assert len(receiver.at("/dup")) == 2  # recorded as delivered: never sent again


def test_events_a_webhook_does_not_want_are_marked_delivered_without_a_post(
    repo: TaskRepository, receiver: Receiver
) -> None:
    epoch = repo.advance_epoch()
    finish(repo, epoch, "cancelled", fail=False)
    hook = WebhookSettings(url=receiver.url("/failures"), events=frozenset({"Failed"}), users=frozenset({3}))
    send = sender(repo, epoch, HttpxWebhookPoster(), hook)
    outbox = SqlOutbox(repo.engine)  # type: ignore[attr-defined]
    run_until(send, lambda: outbox.recent()[0].state is DeliveryState.DELIVERED)
    assert receiver.at("/failures") == [] and outbox.recent()[0].tries == 0


def test_notify_list_shows_each_delivery_and_its_outcome(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from nightwatch.app.cli import main
    from tests.support.sql_backends import repository_at, sqlite_url

    receiver.failures_left["/listed"] = 1000
    with sqlite_url() as url, repository_at(url) as repo:
        epoch = repo.advance_epoch()
        finish(repo, epoch, "listed-failed")
        finish(repo, epoch, "listed-cancelled", fail=False)
        send = sender(repo, epoch, HttpxWebhookPoster(), WebhookSettings(url=receiver.url("/listed")), max_attempts=1)
        outbox = SqlOutbox(repo.engine)  # type: ignore[attr-defined]
        run_until(send, lambda: all(e.state is DeliveryState.FAILED for e in outbox.recent()))
        monkeypatch.setenv("NIGHTWATCH_DATABASE__URL", url)
        capsys.readouterr()
        assert main(["notify", "list", "--json"]) == 0
        rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [(r["event"], r["state"], r["tries"]) for r in rows] == [
            ("Cancelled", "failed", 1),
            ("Failed", "failed", 1),
        ]
        assert "HTTP 500" in rows[0]["last_error"]
        assert main(["notify", "list", "--state", "delivered"]) == 0
        assert capsys.readouterr().out.splitlines()[1:] == []
