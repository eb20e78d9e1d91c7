"""Nudges over Redis pub/sub (the shared Redis, a channel of the test's own): a submit on one replica
reaches the others' dispatch wake-up, and publishing never fails a submit."""

from __future__ import annotations

import threading
import uuid

from nightwatch.adapters.redisnudge import RedisNudges
from tests.support.redis_servers import require_shared_redis


def test_a_published_nudge_reaches_every_listener() -> None:
    url = require_shared_redis()
    channel = f"nightwatch-test-{uuid.uuid4().hex}:nudge"
    listener, publisher = RedisNudges([url], channel=channel), RedisNudges([url], channel=channel)
    heard: list[str] = []
    got = threading.Event()

    def on_nudge(name: str) -> None:
        heard.append(name)
        got.set()

    try:
        listener.listen(on_nudge)
        # The subscription is asynchronous: publish until it is heard (a lost nudge is allowed by design).
        for _ in range(50):
            publisher.publish("dispatch")
            if got.wait(0.1):
                break
        assert got.is_set() and set(heard) == {"dispatch"}
    finally:
        listener.close()
        publisher.close()


def test_publishing_to_a_master_that_is_down_does_not_raise() -> None:
    nudges = RedisNudges(["redis://127.0.0.1:1/0"], channel="nowhere")
    try:
        nudges.publish("dispatch")
    finally:
        nudges.close()
