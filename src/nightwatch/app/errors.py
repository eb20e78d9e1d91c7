"""The one table from domain errors to HTTP statuses, read by the API server and by its client.

`app/api/app.py` registers an exception handler per row; `app/client.py` turns a status back into
the row's domain error, so the CLI gives the same exit code and message with or without `--server`.
Plain Python on purpose: the client must not need FastAPI.

A 422 carries the problems of an `InvalidTaskSpec` as FastAPI's field errors (`field_errors`), and
the client rebuilds them (`problems_of`), so a refused submission still names every field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from nightwatch.domain.errors import (
    DuplicateSchedule,
    DuplicateTask,
    InvalidTaskSpec,
    InvalidTransition,
    NightwatchError,
    PermanentError,
    Problem,
    QueueNotFound,
    RetryableError,
    ScheduleNotFound,
    TaskNotFound,
)

RETRY_AFTER_SECONDS = 5


class ErrorRow(NamedTuple):
    error: type[NightwatchError]
    status: int
    headers: Mapping[str, str] = {}


ERRORS: tuple[ErrorRow, ...] = (
    ErrorRow(TaskNotFound, 404),
    ErrorRow(ScheduleNotFound, 404),
    ErrorRow(DuplicateSchedule, 409),
    ErrorRow(QueueNotFound, 404),
    ErrorRow(DuplicateTask, 409),
    ErrorRow(InvalidTransition, 409),
    ErrorRow(InvalidTaskSpec, 422),
    ErrorRow(RetryableError, 503, {"Retry-After": str(RETRY_AFTER_SECONDS)}),
    ErrorRow(PermanentError, 409),  # any other permanent error, e.g. a row nightwatch cannot read
)
"""Every domain error the API answers with. A raised error takes the row of its nearest class
(the server looks errors up along their MRO), so the order of the rows does not matter."""

FieldError = dict[str, Any]


def field_errors(problems: Iterable[Problem]) -> list[FieldError]:
    """A refused submission as FastAPI's 422 body: `{"loc": ["body", <field>, ...], "msg", "type"}` each."""
    return [{"loc": ["body", *p.loc], "msg": p.message, "type": "value_error"} for p in problems]


def problems_of(detail: object) -> tuple[Problem, ...]:
    """The problems a 422 body's `detail` names (the inverse of `field_errors`); any other detail is
    one problem of the whole request."""
    if not isinstance(detail, list):
        return (Problem(("request",), str(detail)),)
    problems = []
    for error in detail:
        if not isinstance(error, dict):
            problems.append(Problem(("request",), str(error)))
            continue
        loc = [part if isinstance(part, int) else str(part) for part in error.get("loc", [])]
        problems.append(
            Problem(tuple(loc[1:] if loc[:1] == ["body"] else loc) or ("request",), str(error.get("msg", "")))
        )
    return tuple(problems)


def problem_line(problem: Problem) -> str:
    """`info.env.0.name: message`: one problem as the CLI prints it."""
    return f"{'.'.join(str(part) for part in problem.loc)}: {problem.message}"


def error_for(status: int, message: str, *, expected: type[NightwatchError] | None = None) -> NightwatchError | None:
    """The domain error a status stands for, or None when no row has it.

    Several rows share 409: `expected` (what the request can run into, e.g. DuplicateTask for a
    submit) picks one of them; otherwise the most general of them.
    """
    rows = [row.error for row in ERRORS if row.status == status]
    if not rows:
        return None
    if expected is not None and expected in rows:
        return expected(message)
    general = [cls for cls in rows if all(issubclass(other, cls) for other in rows)]
    return (general[0] if general else rows[0])(message)
