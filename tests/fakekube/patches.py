"""The patch flavours the fake API server accepts.

Merge patch and strategic merge patch are both served by one recursive merge (lists are
replaced, `null` deletes a key): good enough for Job objects, whose lists nightwatch never merges.
JSON patch (RFC 6902) covers the list-bodied patches the official client sends.
"""

from __future__ import annotations

import copy
from typing import Any


class PatchError(ValueError):
    """The patch cannot be applied (the server answers 422)."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 merge of `patch` into a copy of `target`."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str]) -> Any:
    node = doc
    for part in parts[:-1]:
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError):
            raise PatchError(f"path /{'/'.join(parts)} does not exist") from None
    return node


def json_patch(target: Any, operations: list[Any]) -> Any:
    """Apply RFC 6902 operations (add, remove, replace, test) to a copy of `target`."""
    doc = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid JSON patch operation {op!r}")
        parts = _pointer(op["path"])
        if not parts:
            raise PatchError("cannot patch the document root")
        parent, last = _parent(doc, parts), parts[-1]
        kind = op["op"]
        if kind == "test":
            try:
                current = parent[int(last)] if isinstance(parent, list) else parent[last]
            except (KeyError, IndexError, ValueError, TypeError):
                raise PatchError(f"test failed at {op['path']}: the path does not exist") from None
            if current != op.get("value"):
                raise PatchError(f"test failed at {op['path']}")
        elif kind == "remove":
            try:
                del parent[int(last) if isinstance(parent, list) else last]
            except (KeyError, IndexError, ValueError):
                raise PatchError(f"path {op['path']} does not exist") from None
        elif kind in ("add", "replace"):
            value = copy.deepcopy(op.get("value"))
            if isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                if kind == "add":
                    parent.insert(index, value)
                else:
                    parent[index] = value
            else:
                if kind == "replace" and last not in parent:
                    raise PatchError(f"path {op['path']} does not exist")
                parent[last] = value
        else:
            raise PatchError(f"unsupported JSON patch op {kind!r}")
    return doc
