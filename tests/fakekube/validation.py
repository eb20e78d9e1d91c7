"""What the real API server refuses in a Job body on create, with the body it refuses it with.

Two stages, as in kube-apiserver:

- **Decoding** (400 BadRequest): a resource quantity that `resource.ParseQuantity` cannot read
  (`"lots"`, `"1 Gi"`) fails while the JSON becomes a Job, before any validation:
  `Job in version "v1" cannot be handled as a Job: quantities must match the regular expression ...`.
- **Validation** (422 Invalid, `apierrors.NewInvalid`): every `field.Error` of the Job and its pod
  template, as `details.causes[]` (`reason` FieldValueRequired / FieldValueInvalid /
  FieldValueNotSupported, `message` without the field, `field`), `details.kind: "Job"`, and the
  message `Job.batch "<name>" is invalid: <field>: <message>` (several errors: `[a, b]`, duplicates once).

Covered (core and batch validation, Kubernetes 1.30-1.34): the name (DNS-1123 subdomain, matched
whole: Python's `$` accepts a trailing newline, Go's does not), the `batch.kubernetes.io/job-name` and
`job-name` pod template labels the Job controller adds (a label value: at most 63 characters, so a
name of 64 or more is refused there), containers (present, named, an image without surrounding
whitespace), restartPolicy (OnFailure or Never), env var names (the relaxed rule, default since 1.32
and GA in 1.34: printable ASCII but `=`; 1.30/1.31 without the gate also refuse a leading digit),
resource quantities (non-negative; integral for extended resources) and requests against limits.
Not covered: everything else of the pod spec (volumes, probes, security contexts...). Values are quoted
as sent, not in Kubernetes' canonical quantity form (the server says `1500m` for `1.5`).
"""

from __future__ import annotations

import json
import re
from fractions import Fraction
from typing import Any

from tests.fakekube.store import StatusError

_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_QUANTITY_SPLIT = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_QUANTITY = re.compile(r"([+-]?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?")
_FACTORS = {
    **{s: Fraction(1024) ** (i + 1) for i, s in enumerate(["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"])},
    **{s: Fraction(10) ** e for s, e in [("n", -9), ("u", -6), ("m", -3), ("", 0), ("k", 3), ("M", 6)]},
    **{s: Fraction(10) ** e for s, e in [("G", 9), ("T", 12), ("P", 15), ("E", 18)]},
}
JOB_NAME_LABELS = ("batch.kubernetes.io/job-name", "job-name")
"""The pod template labels the Job controller derives from the name (validated as label values)."""

SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_VALUE_MESSAGE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
    "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
ENV_NAME_MESSAGE = "a valid environment variable name must consist only of printable ASCII characters other than '='"

Cause = dict[str, str]


def go_quote(value: Any) -> str:
    """A value as Go's %q prints it in a field error (close enough: JSON string escapes)."""
    return json.dumps(value if isinstance(value, str) else str(value), ensure_ascii=False)


def required(field: str, detail: str = "") -> Cause:
    return {
        "reason": "FieldValueRequired",
        "message": "Required value" + (f": {detail}" if detail else ""),
        "field": field,
    }


def invalid(field: str, value: Any, detail: str) -> Cause:
    return {"reason": "FieldValueInvalid", "message": f"Invalid value: {go_quote(value)}: {detail}", "field": field}


def not_supported(field: str, value: Any, supported: list[str]) -> Cause:
    listed = ", ".join(f'"{s}"' for s in supported)
    message = f"Unsupported value: {go_quote(value)}: supported values: {listed}"
    return {"reason": "FieldValueNotSupported", "message": message, "field": field}


def invalid_job(name: str, causes: list[Cause]) -> StatusError:
    """The 422 a real server answers: `Job.batch "x" is invalid: ...` with kind Job and the causes."""
    errors = list(dict.fromkeys(f"{c['field']}: {c['message']}" for c in causes))
    summary = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
    details = {"name": name, "group": "batch", "kind": "Job", "causes": causes}
    return StatusError(422, "Invalid", f'Job.batch "{name}" is invalid: {summary}', details)


def parse_quantity(value: Any) -> Fraction | None:
    """A quantity's value as resource.ParseQuantity reads it (JSON numbers too), or None if it cannot."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return Fraction(value)
    if not isinstance(value, str):
        return None
    match = _QUANTITY.fullmatch(value)
    if match is None:
        return None
    sign, number, suffix = match.group(1), Fraction(match.group(2)), match.group(3) or ""
    factor = _FACTORS.get(suffix)
    if factor is None:  # an exponent
        exponent = int(suffix[1:])
        if abs(exponent) > 400:
            return None
        factor = Fraction(10) ** exponent
    return -number * factor if sign == "-" else number * factor


def _decode_quantities(containers: list[Any]) -> None:
    for container in containers:
        resources = container.get("resources") if isinstance(container, dict) else None
        for part in ("limits", "requests"):
            values = (resources or {}).get(part) if isinstance(resources, dict) else None
            for value in (values or {}).values() if isinstance(values, dict) else ():
                if parse_quantity(value) is None:
                    raise StatusError(
                        400,
                        "BadRequest",
                        'Job in version "v1" cannot be handled as a Job: quantities must match the regular '
                        f"expression '{_QUANTITY_SPLIT}'",
                    )


def _is_native(name: str) -> bool:
    return "/" not in name or "kubernetes.io/" in name


def _overcommit_allowed(name: str) -> bool:
    return _is_native(name) and not name.startswith("hugepages-")


def _resource_causes(path: str, resources: Any) -> list[Cause]:
    if not isinstance(resources, dict):
        return []
    causes: list[Cause] = []
    limits = resources.get("limits") if isinstance(resources.get("limits"), dict) else {}
    requests = resources.get("requests") if isinstance(resources.get("requests"), dict) else {}
    for part, values in (("limits", limits), ("requests", requests)):
        for name, value in values.items():
            amount = parse_quantity(value)
            if amount is not None and amount < 0:
                causes.append(invalid(f"{path}.{part}[{name}]", value, "must be greater than or equal to 0"))
            elif amount is not None and not _is_native(name) and amount.denominator != 1:
                causes.append(invalid(f"{path}.{part}[{name}]", value, "must be an integer"))
    for name, value in requests.items():
        wanted = parse_quantity(value)
        if name not in limits:
            if not _overcommit_allowed(name):
                causes.append(required(f"{path}.limits", "Limit must be set for non overcommitable resources"))
            continue
        allowed = parse_quantity(limits[name])
        if wanted is None or allowed is None:
            continue
        if not _overcommit_allowed(name) and wanted != allowed:
            causes.append(invalid(f"{path}.requests", value, f"must be equal to {name} limit of {limits[name]}"))
        elif wanted > allowed:
            detail = f"must be less than or equal to {name} limit of {limits[name]}"
            causes.append(invalid(f"{path}.requests", value, detail))
    return causes


def _container_causes(i: int, container: Any) -> list[Cause]:
    path = f"spec.template.spec.containers[{i}]"
    if not isinstance(container, dict):
        return [required(f"{path}.name"), required(f"{path}.image")]
    causes: list[Cause] = []
    if not container.get("name"):
        causes.append(required(f"{path}.name"))
    image = container.get("image")
    if not image:
        causes.append(required(f"{path}.image"))
    elif isinstance(image, str) and image != image.strip():
        causes.append(invalid(f"{path}.image", image, "must not have leading or trailing whitespace"))
    for j, env in enumerate(container.get("env") or ()):
        name = env.get("name") if isinstance(env, dict) else None
        if not name:
            causes.append(required(f"{path}.env[{j}].name"))
        elif not isinstance(name, str) or "=" in name or not all(" " <= c <= "~" for c in name):
            causes.append(invalid(f"{path}.env[{j}].name", name, ENV_NAME_MESSAGE))
    causes += _resource_causes(f"{path}.resources", container.get("resources"))
    return causes


def _name_causes(meta: dict[str, Any]) -> list[Cause]:
    name = meta.get("name", "")
    if not name:
        return [required("metadata.name", "name or generateName is required")]
    if not isinstance(name, str):
        return [invalid("metadata.name", name, SUBDOMAIN_MESSAGE)]
    causes: list[Cause] = []
    if len(name) > 253:
        causes.append(invalid("metadata.name", name, "must be no more than 253 characters"))
    elif not _DNS1123_SUBDOMAIN.fullmatch(name):
        causes.append(invalid("metadata.name", name, SUBDOMAIN_MESSAGE))
    for _ in JOB_NAME_LABELS:
        if len(name) > 63:
            causes.append(invalid("spec.template.labels", name, "must be no more than 63 characters"))
        if not _LABEL_VALUE.fullmatch(name):
            causes.append(invalid("spec.template.labels", name, LABEL_VALUE_MESSAGE))
    return causes


def check_job(job: dict[str, Any]) -> None:
    """Raise the StatusError a real server answers for this Job body (400 or 422); None if it is accepted."""
    spec = job.get("spec") if isinstance(job.get("spec"), dict) else {}
    template = spec.get("template") if isinstance(spec.get("template"), dict) else {}
    pod_spec = template.get("spec") if isinstance(template.get("spec"), dict) else {}
    containers = pod_spec.get("containers")
    _decode_quantities(containers if isinstance(containers, list) else [])
    meta = job.get("metadata") if isinstance(job.get("metadata"), dict) else {}
    causes = _name_causes(meta)
    if not containers or not isinstance(containers, list):
        causes.append(required("spec.template.spec.containers"))
    else:
        for i, container in enumerate(containers):
            causes += _container_causes(i, container)
    policy = pod_spec.get("restartPolicy")
    if not policy:
        causes.append(required("spec.template.spec.restartPolicy", 'valid values: "OnFailure", "Never"'))
    elif policy not in ("OnFailure", "Never"):
        causes.append(not_supported("spec.template.spec.restartPolicy", policy, ["OnFailure", "Never"]))
    if causes:
        name = meta.get("name", "")
        raise invalid_job(name if isinstance(name, str) else str(name), causes)
