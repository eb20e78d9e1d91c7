"""The local process runner: the embedded default's stand-in for Kubernetes (no cluster needed).

`LocalJobRunner` and `LocalRunnerSettings` are loaded lazily so that the supervisor, which lives
in this package and is started once per task, does not pay for importing pydantic at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nightwatch.adapters.local.runner import LocalJobRunner
    from nightwatch.adapters.local.settings import LocalRunnerSettings

__all__ = ["LocalJobRunner", "LocalRunnerSettings"]


def __getattr__(name: str) -> Any:
    if name == "LocalJobRunner":
        from nightwatch.adapters.local.runner import LocalJobRunner

        return LocalJobRunner
    if name == "LocalRunnerSettings":
        from nightwatch.adapters.local.settings import LocalRunnerSettings

        return LocalRunnerSettings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
