"""`JobSpec`: the allow-listed subset of a Job that a task's `info` JSON may set, and its bounds.

`info` is user input. Only the fields below can ever reach a Job; unknown keys stay in the row
(nightwatch never rewrites `info`) but are dropped here, so nothing in `info` can make a Job
privileged, mount host paths or pick a service account.

Every value that does reach a Job is bounded here, and only here, by a rule the Job API itself
accepts (so a spec refused by the API server, or one that crashes the local supervisor, is refused at
submit instead, with a message naming the field). Submit and dispatch both parse through `JobSpec`.

| field                      | rule                                                        | source                              |
|----------------------------|-------------------------------------------------------------|-------------------------------------|
| `image`                    | image reference grammar; name <= 255, whole <= 1024 chars    | distribution/reference regexp.go    |
| `command`, `args` items    | no NUL, no lone surrogate                                   | execve(2) cannot pass them          |
| `env[].name`               | 1..1024 printable ASCII characters (0x20-0x7E), no `=`      | validation.IsRelaxedEnvVarName      |
| `env[].value`              | no NUL, no lone surrogate                                   | execve(2) cannot pass them          |
| `resources.*` keys         | `cpu`, `memory`, `ephemeral-storage`, `hugepages-<q>`, or a  | core validation                     |
|                            | prefixed qualified name such as `nvidia.com/gpu`            | validateContainerResourceName       |
| `resources.*` values       | quantity grammar, 0 <= value <= INT64_MAX / 1000; integral   | apimachinery resource/quantity.go;  |
|                            | for extended resources (`vendor/name`)                      | ValidateResourceQuantityValue       |
| `resources.requests`       | <= the limit of the same resource; for resources that cannot | core ValidateResourceRequirements   |
|                            | be overcommitted (extended, hugepages) a limit, and equal    | (IsOvercommitAllowed)               |
| `backoffLimit`             | 0..100                                                      | int32 in the API; nightwatch's cap  |
| `activeDeadlineSeconds`    | 1..2147483647                                               | int64 in the API; capped at int32   |
| `ttlSecondsAfterFinished`  | 0..2147483647                                               | int32 in the API                    |
| `startTimeoutSeconds`      | 0..2147483647 (0: off; unset: `runner.start_timeout_seconds`)| nightwatch's own, an annotation     |
| `retry`                    | a retry policy (`domain/retries.py`), unknown keys refused  | nightwatch's own, never on the Job  |

`startTimeoutSeconds` is nightwatch's, not the Job API's: a Job with no running pod that long after it
started is deleted and its task fails with the last known reason (FailedCreate, ImagePullBackOff,
Unschedulable). The Kubernetes runner carries it on the Job as the annotation
`nightwatch.io/start-timeout-seconds`; the local runner ignores it (its process starts at once or fails).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from nightwatch.domain.errors import InvalidTaskSpec, Problem
from nightwatch.domain.model import TaskId
from nightwatch.domain.profiles import BUILTIN_DEFAULT, NO_PLACEMENT, Placement, Profile
from nightwatch.domain.retries import RetrySpec

MAX_INFO_BYTES = 256 * 1024
"""Larger `info` is refused: a Job object must stay well under etcd's 1.5 MiB limit."""

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

MAX_BACKOFF_LIMIT = 100
"""The API takes an int32, but every retry is a new pod (a new process on the local runner): 100 keeps
one task from churning a node for ever, and is what nightwatch has always accepted."""

MAX_ACTIVE_DEADLINE_SECONDS = INT32_MAX
"""The API takes an int64 (> 0). nightwatch caps it at int32 max (68 years, longer than any Job lives):
the local supervisor computes `time.monotonic() + deadline` and sleeps towards it, and 400 nines
overflowed the float conversion there; every timeout API (threading.TIMEOUT_MAX is ~9.2e9 s) takes 2**31-1."""

MAX_TTL_SECONDS_AFTER_FINISHED = INT32_MAX
"""The API stores an int32 (0 and up)."""

MAX_START_TIMEOUT_SECONDS = INT32_MAX
"""Bounded like the Job API's int32 fields (68 years), so every timer and annotation can hold it."""

MAX_IMAGE_CHARS = 1024
"""No real reference comes close (name 255 + tag 128 + a sha512 digest is about 520); it also bounds the regex's work."""

MAX_IMAGE_NAME_CHARS = 255
"""distribution/reference's NameTotalLengthMax: registries and container runtimes refuse longer names."""

MAX_ENV_NAME_CHARS = 1024
"""Kubernetes sets no length limit; nightwatch's own sanity bound, far above any real variable name."""

MAX_QUANTITY_CHARS = 64
MAX_QUANTITY = INT64_MAX // 1000
"""Kubernetes reads quantities as int64 milli-units (MilliValue): anything larger overflows there."""

# -- grammars ---------------------------------------------------------------------------------------
# The image reference grammar of distribution/reference (regexp.go), rewritten for Python's backtracking
# engine: the separator `[-]*` may match nothing there, which makes `[a-z0-9]+(sep[a-z0-9]+)*` the classic
# exponential pattern here; `-+` accepts the same names without the ambiguity. `\w` is spelled out in ASCII.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
IMAGE_REFERENCE = re.compile(
    rf"(?P<name>(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)(?::{_TAG})?(?:@{_DIGEST})?", re.ASCII
)
"""`[domain[:port]/]path[/path...][:tag][@algorithm:hex]`, path components lower-case."""

# apimachinery/pkg/api/resource/quantity.go: <signedNumber><suffix>, suffix one of the binary SI
# (Ki..Ei), the decimal SI (n u m "" k M G T P E) or an exponent (e/E and a signed integer). No sign:
# a container's requests and limits must not be negative.
QUANTITY = re.compile(r"\+?(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?")
_SUFFIX_FACTORS: dict[str, Fraction] = {
    **{s: Fraction(1024) ** (i + 1) for i, s in enumerate(["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"])},
    **{s: Fraction(10) ** e for s, e in [("n", -9), ("u", -6), ("m", -3), ("k", 3), ("M", 6), ("G", 9)]},
    **{s: Fraction(10) ** e for s, e in [("T", 12), ("P", 15), ("E", 18)]},
}

# validation.IsQualifiedName: [DNS-1123 subdomain prefix "/"] name, the name at most 63 characters.
_QUALIFIED_NAME_PART = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?", re.ASCII)
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*", re.ASCII)
STANDARD_CONTAINER_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage"})


def _refuse(rule: str) -> PydanticCustomError:
    # PydanticCustomError formats its template: rules carry no braces.
    return PydanticCustomError("info_bound", rule)


def _int_in(low: int, high: int, why: str) -> AfterValidator:
    def check(value: int) -> int:
        if value < low:
            raise _refuse(f"must be at least {low}")
        if value > high:
            raise _refuse(f"must be at most {high} ({why})")
        return value

    return AfterValidator(check)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _process_string(value: str) -> str:
    # What execve(2) passes: bytes up to a NUL, so no NUL; UTF-8, so no lone surrogate (JSON's "\ud800").
    if "\x00" in value:
        raise _refuse("must not contain NUL (a process cannot be passed one)")
    if _SURROGATE.search(value):
        raise _refuse("must be valid Unicode text (a lone surrogate cannot be encoded)")
    return value


def _image(value: str) -> str:
    if not value:
        raise _refuse("must not be empty")
    if len(value) > MAX_IMAGE_CHARS:
        raise _refuse(f"is {len(value)} characters, the limit is {MAX_IMAGE_CHARS}")
    match = IMAGE_REFERENCE.fullmatch(value)
    if match is None:
        raise _refuse(
            "is not an image reference: [registry[:port]/]name[:tag][@digest], the name in lower-case "
            "letters, digits and . _ __ - separators, no spaces (e.g. busybox, python:3.12, ghcr.io/org/app@sha256:...)"
        )
    if len(match["name"]) > MAX_IMAGE_NAME_CHARS:
        raise _refuse(f"has a name of {len(match['name'])} characters, the limit is {MAX_IMAGE_NAME_CHARS}")
    return value


def _env_name(value: str) -> str:
    if not value:
        raise _refuse("must not be empty")
    if len(value) > MAX_ENV_NAME_CHARS:
        raise _refuse(f"is {len(value)} characters, the limit is {MAX_ENV_NAME_CHARS}")
    if "=" in value or not all(" " <= c <= "~" for c in value):
        raise _refuse("must consist only of printable ASCII characters other than '=' (Kubernetes' env var name rule)")
    return value


def _is_qualified_name(value: str) -> bool:
    prefix, slash, name = value.rpartition("/")
    if slash and not (len(prefix) <= 253 and _DNS1123_SUBDOMAIN.fullmatch(prefix)):
        return False
    return len(name) <= 63 and _QUALIFIED_NAME_PART.fullmatch(name) is not None


def _resource_name(value: str) -> str:
    if not _is_qualified_name(value):
        raise _refuse("is not a resource name: a qualified name such as cpu, memory or nvidia.com/gpu")
    if "/" not in value:
        if value not in STANDARD_CONTAINER_RESOURCES and not _is_hugepages(value):
            raise _refuse("must be cpu, memory, ephemeral-storage, hugepages-<size> or prefixed (vendor.com/name)")
    elif not _is_native(value) and (value.startswith("requests.") or not _is_qualified_name("requests." + value)):
        raise _refuse("does not follow the extended resource name rule (vendor.com/name, not requests.*)")
    return value


def _is_hugepages(value: str) -> bool:
    size = value.removeprefix("hugepages-")
    return size != value and (amount := quantity_value(size)) is not None and amount > 0


def _is_native(value: str) -> bool:
    return "/" not in value or "kubernetes.io/" in value


def quantity_value(text: str) -> Fraction | None:
    """The exact value of a Kubernetes quantity string, or None if it does not follow the grammar."""
    match = QUANTITY.fullmatch(text) if len(text) <= MAX_QUANTITY_CHARS else None
    if match is None:
        return None
    number, suffix = Fraction(match["number"]), match["suffix"] or ""
    if suffix not in _SUFFIX_FACTORS and suffix:  # an exponent: e or E and a signed integer
        exponent = int(suffix[1:])
        if number == 0 or exponent < -MAX_QUANTITY_CHARS:
            return Fraction(0) if number == 0 else Fraction(1, 10**9)  # Kubernetes rounds up to 1n
        if exponent > MAX_QUANTITY_CHARS:
            return Fraction(10) ** MAX_QUANTITY_CHARS  # above any bound, without computing 10**huge
        return number * Fraction(10) ** exponent
    return number * _SUFFIX_FACTORS.get(suffix, 1)


def _quantity_text(value: Any) -> Any:
    # Quantities such as `cpu: 1` arrive as JSON numbers; Kubernetes accepts both spellings. Checked for
    # size before str(): a float's str() may use an exponent, and an int's may not fit str() at all.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if value != value or value in (float("inf"), float("-inf")):
        raise _refuse("must be a finite number")
    if value > MAX_QUANTITY:
        raise _refuse(_TOO_LARGE)
    return str(value) if isinstance(value, int) or not value.is_integer() else str(int(value))


_TOO_LARGE = f"must be at most {MAX_QUANTITY} (Kubernetes reads quantities as int64 milli-units)"


def _quantity(value: str) -> str:
    amount = quantity_value(value)
    if amount is None:
        raise _refuse(
            "is not a Kubernetes quantity: a non-negative number with an optional suffix (m, k, M, G, Ki, Mi, "
            f"Gi, ... or e and an exponent), at most {MAX_QUANTITY_CHARS} characters"
        )
    if amount > MAX_QUANTITY:
        raise _refuse(_TOO_LARGE)
    return value


ImageReference = Annotated[str, AfterValidator(_image)]
ProcessString = Annotated[str, AfterValidator(_process_string)]
EnvName = Annotated[str, AfterValidator(_env_name)]
ResourceName = Annotated[str, AfterValidator(_resource_name)]
Quantity = Annotated[str, BeforeValidator(_quantity_text), AfterValidator(_quantity)]


class EnvVar(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    name: EnvName
    value: ProcessString = ""


class Resources(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    requests: dict[ResourceName, Quantity] = Field(default_factory=dict)
    limits: dict[ResourceName, Quantity] = Field(default_factory=dict)

    @field_validator("requests", "limits")
    @classmethod
    def _extended_resources_are_whole(cls, value: dict[str, str]) -> dict[str, str]:
        # ValidateResourceQuantityValue: an extended resource (vendor.com/name) is counted in whole units.
        for name, quantity in value.items():
            if not _is_native(name) and (quantity_value(quantity) or 0).denominator != 1:
                raise _refuse(f"{name}: must be a whole number (an extended resource is counted in units)")
        return value


class JobSpec(BaseModel):
    """What a Job is built from. Field names follow the Job API (camelCase aliases in `info`)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    image: ImageReference
    command: tuple[ProcessString, ...] = ()
    args: tuple[ProcessString, ...] = ()
    env: tuple[EnvVar, ...] = ()
    resources: Resources | None = None
    backoff_limit: Annotated[int, Field(strict=True), _int_in(0, MAX_BACKOFF_LIMIT, "nightwatch's retry cap")] = Field(
        default=1, alias="backoffLimit"
    )
    active_deadline_seconds: (
        Annotated[
            int,
            Field(strict=True),
            _int_in(
                1, MAX_ACTIVE_DEADLINE_SECONDS, "int32 max: about 68 years, as far as the local runner's timers reach"
            ),
        ]
        | None
    ) = Field(default=None, alias="activeDeadlineSeconds")
    ttl_seconds_after_finished: (
        Annotated[
            int, Field(strict=True), _int_in(0, MAX_TTL_SECONDS_AFTER_FINISHED, "int32, as the Job API stores it")
        ]
        | None
    ) = Field(default=None, alias="ttlSecondsAfterFinished")
    start_timeout_seconds: (
        Annotated[int, Field(strict=True), _int_in(0, MAX_START_TIMEOUT_SECONDS, "int32, like the Job API's fields")]
        | None
    ) = Field(default=None, alias="startTimeoutSeconds")
    retry: RetrySpec | None = None
    """nightwatch's own: which failed attempts get another Job (`domain/retries.py`)."""

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
        return cls.from_data(parse_info(info))

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> JobSpec:
        """Parse `info` already read as a JSON object. Raises InvalidTaskSpec."""
        try:
            spec = cls.model_validate(data)
        except ValidationError as exc:
            problems = [_problem(error) for error in exc.errors()]
        else:
            problems = request_limit_problems(spec.resources)
            if not problems:
                return spec
        summary = "; ".join(p.message.removeprefix("invalid info: ") for p in problems)
        raise InvalidTaskSpec("invalid info: " + summary, problems) from None


def _overcommit_allowed(name: str) -> bool:
    # v1helper.IsOvercommitAllowed: native resources other than hugepages may have requests below limits.
    return _is_native(name) and not name.startswith("hugepages-")


def request_limit_problems(resources: Resources | None) -> list[Problem]:
    """Each request the API server refuses against its limit (ValidateResourceRequirements), with its field.

    A request must be at most the limit of the same resource; a resource that cannot be overcommitted
    (extended resources such as `nvidia.com/gpu`, hugepages) needs a limit, and its request must equal it.
    Quantities are compared by exact value (`500m` < `1`, `1Gi` > `1G`), as Kubernetes compares them.
    """
    if resources is None:
        return []
    problems: list[Problem] = []
    for name, request in resources.requests.items():
        where = ("info", "resources", "requests", name)
        limit = resources.limits.get(name)
        if limit is None:
            if not _overcommit_allowed(name):
                problems.append(_bound(where, f"{name} cannot be overcommitted: set a limit equal to the request"))
            continue
        wanted, allowed = quantity_value(request), quantity_value(limit)
        if wanted is None or allowed is None:
            continue  # already refused by the quantity grammar
        if not _overcommit_allowed(name) and wanted != allowed:
            problems.append(_bound(where, f"must be equal to the {name} limit of {limit} (it cannot be overcommitted)"))
        elif wanted > allowed:
            problems.append(_bound(where, f"{request} must be less than or equal to the {name} limit of {limit}"))
    return problems


def _bound(loc: tuple[str, ...], rule: str) -> Problem:
    return Problem(loc, f"invalid info: {'.'.join(loc[1:])}: {rule}")


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
    profile: Profile = BUILTIN_DEFAULT
    """The task's Job profile (the runner merges `spec` into its `job`)."""
    placement: Placement = NO_PLACEMENT
    note: str = ""
    """Set by a runner for itself (the local runner: the profile fields it cannot honour)."""
    attempt: int = 1
    """Which attempt this Job is (`job_name` is `names.job_name_for(task name, attempt)`)."""
