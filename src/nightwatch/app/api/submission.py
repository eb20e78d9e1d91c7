"""A refused submission as FastAPI's 422 body: one entry per problem, `loc` naming the field.

The rules are the domain's (`domain/submission.py`, the same SubmitTask and dispatch apply); this
module only translates their `Problem`s into the shape clients of FastAPI expect.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nightwatch.domain.errors import Problem

FieldError = dict[str, Any]


def field_errors(problems: Iterable[Problem]) -> list[FieldError]:
    """`{"loc": ["body", <field>, ...], "msg": ..., "type": "value_error"}` for each problem."""
    return [{"loc": ["body", *p.loc], "msg": p.message, "type": "value_error"} for p in problems]
