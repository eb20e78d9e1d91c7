"""Nudges over Redis pub/sub: "a task was just submitted, dispatch now", from any replica to the leader.

A replica that takes a submission (REST API, CLI) publishes the watcher's name on a channel of every
Redis master the lock uses; every replica running the service subscribes, and only the leader acts on
it (the service ignores a wake-up for a leader-only watcher on a standby). A nudge is a latency
optimisation only: one that is lost (a master down, a subscriber reconnecting) leaves the task to the
dispatch poll, within its interval. So publishing never raises, and subscribers reconnect quietly.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import redis

from nightwatch.adapters.redlock import redis_client

logger = logging.getLogger(__name__)

RECONNECT_SECONDS = 1.0


class RedisNudges:
    def __init__(self, urls: Sequence[str], *, channel: str, timeout: float = 0.5) -> None:
        self._urls = list(urls)
        self._channel = channel
        self._clients = [redis_client(url, timeout=timeout) for url in self._urls]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def publish(self, name: str) -> None:
        """Tell every subscriber; a master that does not answer is skipped (the poll still finds the task)."""
        for client in self._clients:
            try:
                client.publish(self._channel, name)
            except redis.RedisError as exc:
                logger.debug("nudge %r not published on a master: %s", name, exc)

    def listen(self, on_nudge: Callable[[str], None]) -> None:
        """Call `on_nudge(name)` for every nudge, from one daemon thread per master, until `close()`."""
        for url in self._urls:
            thread = threading.Thread(target=self._listen, args=(url, on_nudge), name="nudges", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _listen(self, url: str, on_nudge: Callable[[str], None]) -> None:
        while not self._stop.is_set():
            client = redis_client(url, timeout=RECONNECT_SECONDS)
            try:
                pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
                pubsub.subscribe(self._channel)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=RECONNECT_SECONDS)
                    if message is not None and message.get("type") == "message":
                        data = message.get("data")
                        on_nudge(data.decode() if isinstance(data, bytes) else str(data))
            except (redis.RedisError, OSError) as exc:
                logger.debug("nudge subscription to a master lost (%s); reconnecting", exc)
                self._stop.wait(RECONNECT_SECONDS)
            except Exception:  # a subscriber must not die: the next nudge may matter
                logger.exception("nudge subscriber failed; reconnecting")
                self._stop.wait(RECONNECT_SECONDS)
            finally:
                client.close()

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(RECONNECT_SECONDS * 2)
        for client in self._clients:
            client.close()
