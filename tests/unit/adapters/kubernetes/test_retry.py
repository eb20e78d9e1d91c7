"""ApiCaller's backoff between attempts: exponential, capped, jittered."""

from __future__ import annotations

from nightwatch.adapters.kubernetes.ratelimit import TokenBucket
from nightwatch.adapters.kubernetes.retry import ApiCaller


def test_backoff_is_exponential_and_capped() -> None:
    caller = ApiCaller(
        TokenBucket(0, 0), request_timeout=1, max_attempts=4, backoff_base=0.5, backoff_cap=3.0, jitter=lambda: 1.0
    )
    assert [caller.backoff(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    low = ApiCaller(TokenBucket(0, 0), request_timeout=1, max_attempts=4, backoff_base=0.5, jitter=lambda: 0.0)
    assert low.backoff(1) == 0.25  # jitter keeps at least half the delay
