"""`JobSpec`: the allow-listed subset of a Job that a task's `info` JSON may set.

`info` is user input. Only the fields below can ever reach a Job; unknown keys stay in the row
(nightwatch never rewrites `info`) but are dropped here, so nothing in `info` can make a Job
privileged, mount host paths or pick a service account.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails

from nightwatch.domain.errors import InvalidTaskSpec, Problem
from nightwatch.domain.model import TaskId

MAX_INFO_BYTES = 256 * 1024
"""Larger `info` is refused: a Job object must stay well under etcd's 1.5 MiB limit."""


class EnvVar(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    name: str = Field(min_length=1)
    value: str = ""


class Resources(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    requests: dict[str, str] = Field(default_factory=dict)
    limits: dict[str, str] = Field(default_factory=dict)

    @field_validator("requests", "limits", mode="before")
    @classmethod
    def _quantities_as_strings(cls, value: Any) -> Any:
        # Quantities such as `cpu: 1` arrive as JSON numbers; Kubernetes accepts both spellings.
        if isinstance(value, dict):
            return {
                k: str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v for k, v in value.items()
            }
        return value


class JobSpec(BaseModel):
    """What a Job is built from. Field names follow the Job API (camelCase aliases in `info`)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    image: str = Field(min_length=1)
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[EnvVar, ...] = ()
    resources: Resources | None = None
    backoff_limit: int = Field(default=1, alias="backoffLimit", ge=0, le=100, strict=True)
    active_deadline_seconds: int | None = Field(default=None, alias="activeDeadlineSeconds", gt=0, strict=True)
    ttl_seconds_after_finished: int | None = Field(default=None, alias="ttlSecondsAfterFinished", ge=0, strict=True)

    @field_validator("command", "args", mode="before")
    @classmethod
    def _strings_only(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
            raise ValueError("must be a list of strings")
        return value

    @field_validator("env", mode="before")
    @classmethod
    def _env_from_mapping(cls, value: Any) -> Any:
        # Accept the friendlier {"NAME": "value"} as well as the Job API's [{"name":..,"value":..}].
        if isinstance(value, dict):
            return [{"name": k, "value": v} for k, v in value.items()]
        return value

    @classmethod
    def from_info(cls, info: str | None) -> JobSpec:
        """Parse a task's `info` column. Raises InvalidTaskSpec with a message a user can act on."""
        data = parse_info(info)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = [_problem(error) for error in exc.errors()]
            summary = "; ".join(p.message.removeprefix("invalid info: ") for p in problems)
            raise InvalidTaskSpec("invalid info: " + summary, problems) from None


def parse_info(info: str | None) -> dict[str, Any]:
    """`info` text as the JSON object it must hold (not yet checked as a Job spec).

    Raises InvalidTaskSpec when it is not text, empty, over MAX_INFO_BYTES, nested too deeply to
    parse, not JSON, or JSON but not an object.
    """
    if info is not None and not isinstance(info, str):
        # A BLOB written into the column by hand comes back as bytes (SQLite keeps what it is given).
        raise InvalidTaskSpec(f"info must be text holding a JSON object, not {type(info).__name__}")
    if info is None or not info.strip():
        raise InvalidTaskSpec("info is empty: it must be a JSON object with at least an 'image'")
    size = len(info.encode("utf-8", errors="replace"))
    if size > MAX_INFO_BYTES:
        raise InvalidTaskSpec(f"info is {size} bytes, the limit is {MAX_INFO_BYTES}")
    try:
        data = json.loads(info)
    except RecursionError:
        # The parser recurses per level: `[[[[...` a few thousand deep fits well under the size limit.
        raise InvalidTaskSpec("info is nested too deeply to parse") from None
    except ValueError as exc:
        raise InvalidTaskSpec(f"info is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidTaskSpec(f"info must be a JSON object, not {type(data).__name__}")
    return data


def _problem(error: ErrorDetails) -> Problem:
    where = ".".join(str(p) for p in error["loc"]) or "info"
    return Problem(("info", *error["loc"]), f"invalid info: {where}: {error['msg']}")


@dataclass(frozen=True, slots=True)
class LaunchRequest:
    """Everything a JobRunner needs to create (or adopt) the Job of one task."""

    task_id: TaskId
    job_name: str
    namespace: str
    spec: JobSpec
