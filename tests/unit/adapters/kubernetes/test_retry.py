"""ApiCaller's backoff between attempts: exponential, capped, jittered."""

from __future__ import annotations

import json

from kubernetes.client.exceptions import ApiException

from nightwatch.adapters.kubernetes.ratelimit import TokenBucket
from nightwatch.adapters.kubernetes.retry import ApiCaller, api_causes
from nightwatch.domain.errors import Problem


def test_backoff_is_exponential_and_capped() -> None:
    caller = ApiCaller(
        TokenBucket(0, 0), request_timeout=1, max_attempts=4, backoff_base=0.5, backoff_cap=3.0, jitter=lambda: 1.0
    )
    assert [caller.backoff(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    low = ApiCaller(TokenBucket(0, 0), request_timeout=1, max_attempts=4, backoff_base=0.5, jitter=lambda: 0.0)
    assert low.backoff(1) == 0.25  # jitter keeps at least half the delay


def status_error(body: str) -> ApiException:
    exc = ApiException(status=422, reason="Unprocessable Entity")
    exc.body = body
    return exc


def test_api_causes_reads_field_and_message_of_a_422() -> None:
    """The shape a real API server sends: `details.causes[]` with `reason`, `message` and `field`."""
    status = {
        "kind": "Status",
        "reason": "Invalid",
        "details": {
            "kind": "Job",
            "causes": [
                {
                    "reason": "FieldValueRequired",
                    "message": "Required value",
                    "field": "spec.template.spec.containers[0].image",
                },
                {"reason": "FieldValueInvalid", "message": "Invalid value: -1"},
                {"reason": "FieldValueForbidden", "field": "spec.x"},
                "not an object",
            ],
        },
    }
    assert api_causes(status_error(json.dumps(status))) == (
        Problem(("spec.template.spec.containers[0].image",), "Required value"),
        Problem((), "Invalid value: -1"),
        Problem(("spec.x",), "FieldValueForbidden"),
    )


def test_api_causes_is_empty_without_causes() -> None:
    for body in ("", "not json", "[]", '{"message": "no details"}', '{"details": {"causes": "x"}}'):
        assert api_causes(status_error(body)) == ()
