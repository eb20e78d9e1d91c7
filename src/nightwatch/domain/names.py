"""Kubernetes name rules the task's name and namespace must satisfy before any Job is built."""

from __future__ import annotations

import re

from nightwatch.domain.errors import InvalidTaskSpec

DNS1123_LABEL_MAX = 63
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def check_dns1123_label(value: str, what: str) -> str:
    """Return `value` if it is a valid DNS-1123 label, else raise InvalidTaskSpec naming `what`."""
    if not value:
        raise InvalidTaskSpec(f"{what} must not be empty")
    if len(value) > DNS1123_LABEL_MAX:
        raise InvalidTaskSpec(f"{what} {value[:20]!r}... is {len(value)} characters, the limit is {DNS1123_LABEL_MAX}")
    # fullmatch, not match with `$`: `$` also matches before a trailing newline, so "abc\n" passed.
    if not _DNS1123_LABEL.fullmatch(value):
        raise InvalidTaskSpec(
            f"{what} {value!r} is not a DNS-1123 label "
            "(lower-case letters, digits and '-', starting and ending with a letter or digit)"
        )
    return value


def check_namespace_allowed(namespace: str, allowed: frozenset[str]) -> str:
    """Refuse a namespace that is not on the configured allow-list."""
    check_dns1123_label(namespace, "namespace")
    if namespace not in allowed:
        raise InvalidTaskSpec(
            f"namespace {namespace!r} is not allowed (allowed: {', '.join(sorted(allowed)) or 'none'})"
        )
    return namespace
