"""The `LeaderLock` port as a Redlock lease over N independent Redis masters.

Leadership must survive the loss of a minority of Redis masters and must never stall the leader:
a renewal that waits on a dead master past the lease's end is a renewal that loses the lease. Nor
may a minority's loss be spent for good: masters keep nothing on disk, so a restarted one is empty,
and a renewal puts the token back on it (and on one that was down when the lease was taken).
Otherwise a leader that took its lease while one master was down, or lived through one restart,
holds it on a bare majority, and the next single master to go takes the lease with it.

Why redis-py with two small Lua scripts rather than pottery's `Redlock`: the lease needs precise
control over every network call (one EVAL per master per call, bounded socket timeouts, no client
retries, masters asked in parallel) and a validity computed locally from when the last successful
call *started*, so `is_held()` costs no round trip. pottery hides the clients' retry policy, asks
every master again in `locked()`, and signals a lost extension with exceptions; the whole algorithm
(take-or-refresh with PX on a majority, compare-and-delete, drift allowance) is short enough
to own. See https://redis.io/docs/latest/develop/use/patterns/distributed-locks/.

The token stored under the key is the replica's `owner` id, so it must be unique per process
(`default_replica_id()` is). A replica that still holds its own token on the masters (say after a
renewal that missed quorum) can `acquire()` again at once instead of waiting for expiry.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

logger = logging.getLogger(__name__)


# Take the key if it is free, or refresh it if it already holds our token. Used to acquire and to renew:
# a renewal also puts the token back on a master that restarted empty (or was down when we acquired), so
# the lease keeps surviving the loss of any minority rather than of only the masters it happens to be on.
# A key holding someone else's token is never touched.
_ACQUIRE = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
if current then
    return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# Delete only our own token, never a successor's.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


def default_replica_id() -> str:
    """A replica id unique per process: hostname, pid and random hex (pids repeat across pods)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def socket_timeout_for(ttl_seconds: float) -> float:
    """A per-command timeout small enough that a dead master costs a fraction of the lease."""
    return min(0.2, ttl_seconds / 10)


def redis_client(url: str, *, timeout: float) -> redis.Redis:
    """A client fit for Redlock: short timeouts and no retries (redis-py 8 retries 10 times by default)."""
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )


class RedlockLeaderLock:
    """A lease held by at most one replica, on a majority (N//2+1) of independent Redis masters.

    Clients given as URLs are built with `redis_client`; clients given as objects should be built
    the same way (short timeouts, no retries). The lock owns its clients: `close()` closes them.
    """

    def __init__(
        self,
        masters: Sequence[redis.Redis | str],
        *,
        owner: str,
        key: str,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not masters:
            raise ValueError("Redlock needs at least one Redis master")
        if not owner:
            raise ValueError("owner must be a non-empty replica id")
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        timeout = socket_timeout_for(ttl_seconds)
        self._clients = [redis_client(m, timeout=timeout) if isinstance(m, str) else m for m in masters]
        self.owner = owner
        self.key = key
        self.ttl_seconds = ttl_seconds
        self.quorum = len(self._clients) // 2 + 1
        # Redlock's allowance for clock drift between this host and the masters.
        self.drift_seconds = ttl_seconds * 0.01 + 0.002
        self._ttl_ms = max(1, int(ttl_seconds * 1000))
        self._clock = clock
        self._valid_until: float | None = None
        # acquire/renew/release run one at a time so a late renew cannot resurrect a released lease;
        # is_held()/validity_seconds() read one attribute and never wait on this.
        self._op_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=len(self._clients), thread_name_prefix="redlock")
        self._closed = False

    @classmethod
    def from_urls(cls, urls: Sequence[str], *, owner: str, key: str, ttl_seconds: float) -> RedlockLeaderLock:
        return cls(list(urls), owner=owner, key=key, ttl_seconds=ttl_seconds)

    # -- the port ---------------------------------------------------------------------------
    def acquire(self) -> bool:
        with self._op_lock:
            started = self._clock()
            votes = self._on_all(_ACQUIRE, str(self._ttl_ms))
            if self._won(votes, started):
                self._valid_until = started + self.ttl_seconds - self.drift_seconds
                return True
            self._valid_until = None
            # Undo what we set on a minority so it does not block the next contender until it expires.
            # Only masters that said yes: they just answered, so this is quick. One that did not answer
            # is likely dead or frozen, and asking it again would double the time a failed acquire takes;
            # if it did store our token, the token expires within the TTL.
            granted = [i for i, vote in enumerate(votes) if vote is True]
            if granted:
                self._on_all(_RELEASE, only=granted)
            logger.debug("lease %s not acquired by %s: %s", self.key, self.owner, votes)
            return False

    def renew(self) -> bool:
        with self._op_lock:
            if self._valid_until is None:
                return False
            started = self._clock()
            if started >= self._valid_until:
                self._valid_until = None
                logger.warning("lease %s of %s expired before it was renewed", self.key, self.owner)
                return False
            # Only while our lease is still valid (checked above): a majority then holds our token, so
            # nobody else can hold a majority, and taking a free key on a rejoined master is safe.
            votes = self._on_all(_ACQUIRE, str(self._ttl_ms))
            if self._won(votes, started):
                self._valid_until = started + self.ttl_seconds - self.drift_seconds
                return True
            self._valid_until = None
            logger.warning("lease %s of %s lost: renewal reached no quorum (%s)", self.key, self.owner, votes)
            return False

    def release(self) -> None:
        with self._op_lock:
            self._valid_until = None
            try:
                self._on_all(_RELEASE)
            except Exception:  # the port promises release() never raises; a shutdown must go on
                logger.debug("releasing lease %s failed", self.key, exc_info=True)

    def is_held(self) -> bool:
        return self.validity_seconds() > 0.0

    def validity_seconds(self) -> float:
        valid_until = self._valid_until
        if valid_until is None:
            return 0.0
        return max(0.0, valid_until - self._clock())

    def close(self) -> None:
        """Stop the worker threads and close the clients (does not release the lease)."""
        if self._closed:
            return
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        for client in self._clients:
            try:
                client.close()
            except (redis.RedisError, OSError):
                logger.debug("closing a Redis client failed", exc_info=True)

    # -- internals ----------------------------------------------------------------------------
    def _won(self, votes: Sequence[bool | None], started: float) -> bool:
        granted = sum(1 for vote in votes if vote is True)
        validity = self.ttl_seconds - (self._clock() - started) - self.drift_seconds
        return granted >= self.quorum and validity > 0

    def _on_all(self, script: str, *args: str, only: Sequence[int] | None = None) -> list[bool | None]:
        """Run `script` on the masters in parallel: True/False per answer, None where none came."""
        indexes = range(len(self._clients)) if only is None else only
        votes: list[bool | None] = [None] * len(self._clients)
        futures: dict[int, Future[bool | None]] = {
            i: self._pool.submit(self._call, self._clients[i], script, args) for i in indexes
        }
        # Socket timeouts bound each call; this deadline is a safety net past which the lease is
        # worthless anyway (validity would be <= 0).
        wait(futures.values(), timeout=max(0.0, self.ttl_seconds - self.drift_seconds))
        for i, future in futures.items():
            if future.done() and not future.cancelled():
                votes[i] = future.result()
        return votes

    def _call(self, client: redis.Redis, script: str, args: Sequence[str]) -> bool | None:
        try:
            return bool(client.eval(script, 1, self.key, self.owner, *args))
        except (redis.RedisError, OSError) as exc:
            # A down master is expected (that is why there are N); the quorum decides.
            logger.debug("Redis master %s did not answer: %s", _describe(client), exc)
            return None


def _describe(client: redis.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
