"""Label selectors as the API server parses them (the subset nightwatch and its tests use).

Supported: `k=v`, `k==v`, `k!=v`, `k` (key exists), `!k` (key absent) and `k in (a,b)` /
`k notin (a,b)`, comma-joined (all must hold). An empty selector matches everything.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

Predicate = Callable[[Mapping[str, str]], bool]

_SET = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


class SelectorError(ValueError):
    """The selector cannot be parsed (the server answers 400 BadRequest)."""


def _split(selector: str) -> list[str]:
    # Commas inside `in (a,b)` do not separate requirements.
    parts, depth, current = [], 0, ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def _requirement(text: str) -> Predicate:
    match = _SET.match(text)
    if match:
        key, op, values = match.group(1), match.group(2), {v.strip() for v in match.group(3).split(",")}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if "!=" in text:
        key, value = (s.strip() for s in text.split("!=", 1))
        return lambda labels: labels.get(key) != value
    if "=" in text:
        key, value = (s.strip() for s in text.replace("==", "=").split("=", 1))
        if not key:
            raise SelectorError(f"invalid label selector requirement {text!r}")
        return lambda labels: labels.get(key) == value
    if text.startswith("!"):
        key = text[1:].strip()
        return lambda labels: key not in labels
    if not re.fullmatch(r"[A-Za-z0-9./_-]+", text):
        raise SelectorError(f"invalid label selector requirement {text!r}")
    return lambda labels: text in labels


def parse_selector(selector: str | None) -> Predicate:
    """Compile a selector into a predicate over a labels mapping. Raises SelectorError."""
    requirements = [_requirement(part) for part in _split(selector or "")]
    return lambda labels: all(req(labels) for req in requirements)
