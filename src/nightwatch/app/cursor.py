"""The REST API's page cursor: issued and read by the API, built by its client for `list --before`.

It encodes the id the next page starts below. Clients other than nightwatch's own must treat it as
opaque (the format may change together with the client).
"""

from __future__ import annotations

import base64
import binascii

MAX_ID = 2**63 - 1
"""BIGINT's range: a larger id or user cannot exist, and the databases reject it as a parameter."""

_PREFIX = "before:"


def encode_cursor(before_id: int) -> str:
    """The cursor of the page of tasks with ids below `before_id`."""
    return base64.urlsafe_b64encode(f"{_PREFIX}{before_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The id a cursor encodes. Raises ValueError for anything `encode_cursor` did not make."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        raise ValueError("not a cursor") from None
    digits = text[len(_PREFIX) :]
    if text.startswith(_PREFIX) and digits.isdigit() and 1 <= int(digits) <= MAX_ID:
        return int(digits)
    raise ValueError("not a cursor")
