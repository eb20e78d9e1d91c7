"""A submitted task's errors, field by field, in FastAPI's 422 shape.

The rules are the domain's own (`check_dns1123_label`, `check_namespace_allowed`,
`JobSpec.from_info`), the ones SubmitTask and dispatch apply; this module only runs them one field
at a time, so a form can show every problem next to the field it concerns, at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from nightwatch.app.api.schemas import NewTaskIn
from nightwatch.domain.errors import InvalidTaskSpec
from nightwatch.domain.jobspec import JobSpec
from nightwatch.domain.names import check_dns1123_label, check_namespace_allowed

FieldError = dict[str, Any]


def info_json(info: dict[str, Any]) -> str:
    """The `info` column for a submitted object: compact JSON, as the CLI stores it.

    Raises ValueError for what JSON cannot carry (NaN, Infinity) and RecursionError for nesting
    deeper than the interpreter can walk.
    """
    return json.dumps(info, separators=(",", ":"), allow_nan=False)


def submission_errors(body: NewTaskIn, allowed_namespaces: frozenset[str]) -> list[FieldError]:
    """Every problem with `body`; empty when SubmitTask will accept it."""
    errors: list[FieldError] = []
    _check(errors, "name", lambda: check_dns1123_label(body.name, "task name"))
    _check(errors, "namespace", lambda: check_namespace_allowed(body.namespace, allowed_namespaces))
    try:
        raw = info_json(body.info)
    except (ValueError, RecursionError) as exc:
        reason = "nesting too deep" if isinstance(exc, RecursionError) else str(exc)
        errors.append(_error(["info"], f"info is not representable as JSON: {reason}"))
        return errors
    try:
        JobSpec.from_info(raw)
    except InvalidTaskSpec as exc:
        errors.extend(_info_errors(body.info, exc))
    return errors


def field_error(field: str, message: str) -> FieldError:
    return _error([field], message)


def _check(errors: list[FieldError], field: str, check: Callable[[], object]) -> None:
    try:
        check()
    except InvalidTaskSpec as exc:
        errors.append(_error([field], str(exc)))


def _info_errors(info: dict[str, Any], exc: InvalidTaskSpec) -> list[FieldError]:
    """One error per bad key of `info` (loc body.info.<key>...), each worded as the domain words it;
    the domain's whole message for anything else (size)."""
    try:
        JobSpec.model_validate(info)
    except ValidationError as invalid:
        located = []
        for error in invalid.errors():
            where = ".".join(str(p) for p in error["loc"]) or "info"
            located.append(_error(["info", *error["loc"]], f"invalid info: {where}: {error['msg']}"))
        if located:
            return located
    except RecursionError:
        pass
    return [_error(["info"], str(exc))]


def _error(loc: list[str | int], message: str) -> FieldError:
    return {"loc": ["body", *loc], "msg": message, "type": "value_error"}
