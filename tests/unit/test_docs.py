"""The docs cite tests as proof (`unit/app/test_config.py::test_...`): every cited file and test must exist.

A control whose proof moved or was renamed must not go on pointing at nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "deploy" / "README.md"]

# `unit/app/test_config.py::test_x`, `tests/system/test_soak.py`, and `::test_y` continuing the last file.
CITATION = re.compile(
    r"(?:tests/)?(?P<file>(?:unit|contract|integration|system|support)/[\w/]+\.py)(?:::(?P<test>\w+))?|`::(?P<more>\w+)`"
)


def citations(doc: Path) -> list[tuple[str, str | None]]:
    found: list[tuple[str, str | None]] = []
    last: str | None = None
    for match in CITATION.finditer(doc.read_text(encoding="utf-8")):
        if match["file"]:
            last = match["file"]
            found.append((last, match["test"]))
        elif last is not None:
            found.append((last, match["more"]))
    return found


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_cited_test_exists(doc: Path) -> None:
    missing = []
    for file, test in citations(doc):
        path = TESTS / file
        if not path.is_file():
            missing.append(file)
        elif test is not None and not re.search(rf"^(?:async )?def {test}\(", path.read_text(), re.MULTILINE):
            missing.append(f"{file}::{test}")
    assert missing == [], f"{doc.name} cites tests that do not exist"


def test_the_citation_pattern_reads_the_docs_forms() -> None:
    doc = TESTS / "unit" / "app" / "test_config.py"
    text = "`unit/app/test_config.py::test_a`, `::test_b`; tests/system/test_soak.py"
    matches = [(m["file"], m["test"] or m["more"]) for m in CITATION.finditer(text)]
    assert matches == [("unit/app/test_config.py", "test_a"), (None, "test_b"), ("system/test_soak.py", None)]
    assert doc.is_file()
