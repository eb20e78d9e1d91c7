"""Retry policies: which failed attempts get another one, after how long, and the per-task decision.

A task's `info.retry` (`RetrySpec`) is laid over its Job profile's `retry` and then the deployment's
default (`retry.default` in the configuration): `resolve_policy(task, default, profile_default)`. Each
key left out is inherited.

| key                      | meaning                                                         | bounds      | built-in |
|--------------------------|-----------------------------------------------------------------|-------------|----------|
| `attempts`               | attempts in all (the first included) for `exit_code`/`oom`      | 1..100      | 1        |
| `exitCodes`              | the exit codes that retry (others fail at once)                 | 1..255 each | none     |
| `onOOM`                  | an OOMKilled attempt retries                                    | bool        | false    |
| `infrastructureAttempts` | extra attempts infrastructure failures may take (0: none)       | 0..100      | 3 (config)|
| `backoffSeconds`         | the wait before the 2nd attempt; it doubles with each attempt   | 0..86400    | 10       |
| `maxBackoffSeconds`      | the longest wait                                                | 0..86400    | 600      |

`config` and `deadline` failures never retry. An attempt k failing with class C gets attempt k+1 when
k < the limit of C: `attempts` (exit_code when its code is listed, oom with `onOOM`), or
`1 + infrastructureAttempts` (infrastructure). So a task makes at most `max_attempts` Jobs.

Backoff before attempt k+1: d = min(maxBackoffSeconds, backoffSeconds * 2**(k-1)), then "equal
jitter": a uniform wait in [d/2, d] (`jitter` in [0, 1) is passed in, so the domain reads no randomness).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from nightwatch.domain.errors import InvalidTaskSpec, Problem
from nightwatch.domain.failures import Failure, FailureClass, classify
from nightwatch.domain.model import StatusChange, Task
from nightwatch.domain.observation import JobObservation

MAX_ATTEMPTS = 100
"""Like `backoffLimit`'s cap: every attempt is a new Job, and a task must not churn for ever."""
MAX_BACKOFF_SECONDS = 86_400
"""A day: a longer wait is a schedule, not a retry."""

_Attempts = Annotated[int, Field(strict=True, ge=1, le=MAX_ATTEMPTS)]
_Extra = Annotated[int, Field(strict=True, ge=0, le=MAX_ATTEMPTS)]
_Seconds = Annotated[float, Field(ge=0, le=MAX_BACKOFF_SECONDS, allow_inf_nan=False)]
_ExitCode = Annotated[int, Field(strict=True, ge=1, le=255)]


class RetrySpec(BaseModel):
    """`info.retry` (and `retry.default`): every key optional, unknown keys refused (a typo would
    otherwise silently mean "no retry")."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    attempts: _Attempts | None = None
    exit_codes: tuple[_ExitCode, ...] | None = Field(default=None, alias="exitCodes")
    on_oom: bool | None = Field(default=None, alias="onOOM", strict=True)
    infrastructure_attempts: _Extra | None = Field(default=None, alias="infrastructureAttempts")
    backoff_seconds: _Seconds | None = Field(default=None, alias="backoffSeconds")
    max_backoff_seconds: _Seconds | None = Field(default=None, alias="maxBackoffSeconds")

    @model_validator(mode="after")
    def _ordered(self) -> RetrySpec:
        if (
            self.backoff_seconds is not None
            and self.max_backoff_seconds is not None
            and self.max_backoff_seconds < self.backoff_seconds
        ):
            raise ValueError("maxBackoffSeconds must be at least backoffSeconds")
        return self


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A resolved policy: every key has its value."""

    attempts: int = 1
    exit_codes: frozenset[int] = frozenset()
    on_oom: bool = False
    infrastructure_attempts: int = 0
    backoff_seconds: float = 10.0
    max_backoff_seconds: float = 600.0

    @property
    def max_attempts(self) -> int:
        """The most Jobs a task with this policy makes."""
        return max(self.attempts, 1 + self.infrastructure_attempts)

    def limit(self, failure: Failure) -> int:
        """The last attempt number a failure of this kind may happen on and still be retried after."""
        match failure.failure_class:
            case FailureClass.INFRASTRUCTURE:
                return 1 + self.infrastructure_attempts
            case FailureClass.OOM:
                return self.attempts if self.on_oom else 1
            case FailureClass.EXIT_CODE:
                return self.attempts if failure.exit_code in self.exit_codes else 1
            case _:  # config, deadline: the same spec would fail the same way
                return 1

    def backoff(self, attempt: int, jitter: float) -> timedelta:
        """The wait after attempt `attempt` failed: in [d/2, d], d = min(max, base * 2**(attempt-1))."""
        ceiling = min(self.max_backoff_seconds, self.backoff_seconds * 2.0 ** min(attempt - 1, 64))
        return timedelta(seconds=ceiling / 2 + ceiling / 2 * min(max(jitter, 0.0), 1.0))


NO_RETRY = RetryPolicy()

BUILT_IN_DEFAULT = RetrySpec(
    attempts=1, exit_codes=(), on_oom=False, infrastructure_attempts=3, backoff_seconds=10, max_backoff_seconds=600
)
"""`retry.default` when the configuration sets none: infrastructure failures get three more attempts."""


def resolve_policy(
    task: RetrySpec | None, default: RetrySpec = BUILT_IN_DEFAULT, profile_default: RetrySpec | None = None
) -> RetryPolicy:
    """The policy of a task: its own keys, else its profile's (`Profile.retry`), else the deployment's, else the built-in values (`BUILT_IN_DEFAULT`: a deployment default that sets only
    `attempts` keeps the three infrastructure attempts)."""
    layers = [spec for spec in (task, profile_default, default, BUILT_IN_DEFAULT) if spec is not None]

    def pick(name: str, fallback: Any) -> Any:
        for spec in layers:
            value = getattr(spec, name)
            if value is not None:
                return value
        return fallback

    base = RetryPolicy()
    backoff = float(pick("backoff_seconds", base.backoff_seconds))
    return RetryPolicy(
        attempts=pick("attempts", base.attempts),
        exit_codes=frozenset(pick("exit_codes", ())),
        on_oom=pick("on_oom", base.on_oom),
        infrastructure_attempts=pick("infrastructure_attempts", base.infrastructure_attempts),
        backoff_seconds=backoff,
        # An inherited max below the task's own base would shorten its first wait: the max wins upwards.
        max_backoff_seconds=max(backoff, float(pick("max_backoff_seconds", base.max_backoff_seconds))),
    )


def retry_spec_of(info: Mapping[str, Any]) -> RetrySpec | None:
    """`info["retry"]` as a RetrySpec (None if absent). Raises InvalidTaskSpec naming `info.retry.<key>`."""
    raw = info.get("retry")
    if raw is None:
        return None
    try:
        return RetrySpec.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = ("info", "retry", *error["loc"])
            problems.append(Problem(loc, f"invalid info: {'.'.join(map(str, loc[1:]))}: {error['msg']}"))
        raise InvalidTaskSpec("; ".join(p.message for p in problems), problems) from None


def decide(
    task: Task, observation: JobObservation, policy: RetryPolicy, now: datetime, jitter: float = 0.5
) -> StatusChange | None:
    """What an observation does to an in-flight task: a failure is classified and either retried (back
    to Normal, the next attempt not before now + backoff) or ends the task with class, evidence and
    "attempt k of n"; anything else is `Task.observe`. Raises InvalidTransition like `Task.observe`."""
    if not observation.failed:
        return task.observe(observation, now)
    failure = classify(observation)
    limit = policy.limit(failure)
    attempt = task.attempt
    # The Job's own words first (what people grep for), then the class, its evidence and the count.
    head = observation.summary or failure.evidence
    extra = f"; {failure.evidence}" if failure.evidence and failure.evidence != head else ""
    if attempt < limit:
        until = now + policy.backoff(attempt, jitter)
        message = (
            f"{head} [{failure.failure_class} failure{extra}; attempt {attempt} of {limit}; "
            f"retrying: attempt {attempt + 1} not before {until.isoformat(timespec='seconds')}]"
        )
        return task.retry(until, now, message, failure_class=str(failure.failure_class), reason=observation.reason)
    total = max(limit, attempt)
    return task.fail(
        f"{head} [{failure.failure_class} failure{extra}; attempt {attempt} of {total}]",
        now,
        failure_class=str(failure.failure_class),
        reason=observation.reason,
    )
