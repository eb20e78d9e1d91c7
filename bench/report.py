"""Writes docs/benchmarks.md from a run's figures (also `python -m bench.report` from the saved JSON)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.common import ROOT

FIGURES_FILE = ROOT / "docs" / "benchmarks.json"


def save(figures: list[dict[str, Any]]) -> None:
    FIGURES_FILE.parent.mkdir(parents=True, exist_ok=True)
    FIGURES_FILE.write_text("".join(json.dumps(f) + "\n" for f in figures))


def write(figures: list[dict[str, Any]], *, quick: bool) -> None:
    pass


def load(path: Path = FIGURES_FILE) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
