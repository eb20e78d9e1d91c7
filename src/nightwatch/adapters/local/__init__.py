"""The local process runner: the embedded default's stand-in for Kubernetes (no cluster needed).

`LocalJobRunner` is loaded lazily so that the supervisor, which lives in this package and is
started once per task, does not pay for importing the domain (pydantic) at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nightwatch.adapters.local.runner import LocalJobRunner

__all__ = ["LocalJobRunner"]


def __getattr__(name: str) -> Any:
    if name == "LocalJobRunner":
        from nightwatch.adapters.local.runner import LocalJobRunner

        return LocalJobRunner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
