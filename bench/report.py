"""Writes docs/benchmarks.md (placeholder)."""

from __future__ import annotations

from typing import Any


def write(figures: list[dict[str, Any]], *, quick: bool) -> None:
    pass
