"""Kubernetes name rules the task's name and namespace must satisfy before any Job is built."""

from __future__ import annotations

import hashlib
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


ATTEMPT_SUFFIX = "-r"
"""Attempt k > 1 of task `name` runs as Job `<name>-r<k>`; attempt 1 keeps the task's own name."""
_HASH_CHARS = 8


def job_name_for(task_name: str, attempt: int) -> str:
    """The deterministic Job name of one attempt of a task (a DNS-1123 label when the name is one).

    Attempt 1 is the task name itself, so rows and Jobs made before retries existed keep their
    names. A name too long for the suffix is cut and a hash of the whole name inserted, so two long
    names that share a prefix still get different Jobs.
    """
    if attempt <= 1:
        return task_name
    suffix = f"{ATTEMPT_SUFFIX}{attempt}"
    if len(task_name) + len(suffix) <= DNS1123_LABEL_MAX:
        return task_name + suffix
    digest = hashlib.sha256(task_name.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]
    keep = task_name[: DNS1123_LABEL_MAX - len(suffix) - _HASH_CHARS - 1].rstrip("-")
    return f"{keep}-{digest}{suffix}"
