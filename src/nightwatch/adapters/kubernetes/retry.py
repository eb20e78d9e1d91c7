"""Every API call of the adapter goes through `ApiCaller`: rate limit, timeout, bounded retries.

429 waits for the server's Retry-After; 5xx, connection errors and timeouts back off exponentially
with jitter (capped); after `max_attempts` the failure becomes a domain `RetryableError` so the task
stays where it was. Other HTTP errors (404, 409, 422, 403...) are the caller's to interpret and are
raised at once as `ApiException`.

Responses are read raw (`_preload_content=False`) and parsed with `orjson.loads` (as fast as the
watch's events; a list page of 1,000 Jobs is over a megabyte): the caller gets plain dicts, and
reading the body happens inside the retry (a body can time out too).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import orjson
import urllib3
from kubernetes.client.exceptions import ApiException

from nightwatch.adapters.kubernetes.ratelimit import TokenBucket
from nightwatch.domain.errors import Problem, RetryableError

logger = logging.getLogger(__name__)

MAX_RETRY_AFTER_SECONDS = 30.0
"""A Retry-After longer than this is cut short: a dispatch tick must not stall for minutes."""


def api_message(exc: ApiException) -> str:
    """The API server's own message from a Status body, else the HTTP reason."""
    try:
        status = json.loads(exc.body or "")
        if isinstance(status, dict) and status.get("message"):
            return str(status["message"])
    except ValueError:
        pass
    return f"HTTP {exc.status} {exc.reason or ''}".strip()


def api_causes(exc: ApiException) -> tuple[Problem, ...]:
    """The `details.causes` of a Status body (a 422's field errors), one `Problem` each; () if none."""
    try:
        status = json.loads(exc.body or "")
    except ValueError:
        return ()
    details = status.get("details") if isinstance(status, dict) else None
    causes = details.get("causes") if isinstance(details, dict) else None
    if not isinstance(causes, list):
        return ()
    return tuple(
        Problem((str(c["field"]),) if c.get("field") else (), str(c.get("message") or c.get("reason") or ""))
        for c in causes
        if isinstance(c, dict)
    )


def _retry_after(exc: ApiException) -> float | None:
    headers = exc.headers or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return min(float(value), MAX_RETRY_AFTER_SECONDS) if value is not None else None
    except ValueError:
        return None  # an HTTP-date Retry-After: fall back to our own backoff


class ApiCaller:
    def __init__(
        self,
        limiter: TokenBucket,
        *,
        request_timeout: float,
        max_attempts: int,
        backoff_base: float = 0.2,
        backoff_cap: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._limiter = limiter
        self._timeout = request_timeout
        self._max_attempts = max_attempts
        self._base = backoff_base
        self._cap = backoff_cap
        self._sleep = sleep
        self._jitter = jitter

    def backoff(self, attempt: int) -> float:
        """Capped exponential delay before retry number `attempt` (1-based), jittered into [d/2, d)."""
        delay = min(self._cap, self._base * float(2 ** (attempt - 1)))
        return delay * (0.5 + self._jitter() / 2)

    def throttle(self, *, background: bool = False) -> None:
        """Take a token from the rate limiter for a request made outside `call` (a watch, a log)."""
        self._limiter.acquire(background=background)

    def call(
        self, what: str, fn: Callable[..., Any], *args: Any, parse: bool = True, background: bool = False, **kwargs: Any
    ) -> Any:
        """`fn(*args, **kwargs)` with retries; returns the parsed JSON body (None if empty, or if not `parse`).
        `background`: work that may wait (a release): it takes only the rate limiter's spare tokens.

        Raises ApiException for a non-retryable HTTP error, RetryableError once attempts run out.
        """
        for attempt in range(1, self._max_attempts + 1):
            self._limiter.acquire(background=background)
            try:
                response = fn(*args, _preload_content=False, _request_timeout=self._timeout, **kwargs)
                try:
                    data = response.data
                finally:
                    response.release_conn()
                return orjson.loads(data) if data and parse else None
            except ApiException as exc:
                if exc.status == 429:
                    delay = _retry_after(exc) or self.backoff(attempt)
                    detail = f"429 TooManyRequests (retry after {delay:.1f}s)"
                elif exc.status is not None and (exc.status >= 500 or exc.status == 0):
                    delay, detail = self.backoff(attempt), f"HTTP {exc.status}: {api_message(exc)}"
                else:
                    raise
                error: Exception = exc
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                delay, detail, error = self.backoff(attempt), f"{type(exc).__name__}: {exc}", exc
            if attempt == self._max_attempts:
                raise RetryableError(f"{what} failed after {attempt} attempt(s): {detail}") from error
            logger.warning(
                "%s failed (attempt %d of %d), retrying in %.2fs: %s", what, attempt, self._max_attempts, delay, detail
            )
            self._sleep(delay)
        raise AssertionError("unreachable")  # the loop always returns or raises
