"""`nightwatch db init`: upgrade the schema to head (the Alembic revisions in `migrations/`).

`schema.sql` stays the canonical MySQL DDL (shipped in the package as a copy that a test keeps
identical to the top-level file); a test keeps it equal to what the head revision builds.
"""

from __future__ import annotations

import re
from importlib import resources

from nightwatch.adapters.sql.engine import parse_url, redact
from nightwatch.adapters.sql.migrate import upgrade
from nightwatch.adapters.sql.tables import metadata


def schema_sql() -> str:
    """The packaged copy of the canonical MySQL schema."""
    return resources.files("nightwatch").joinpath("schema.sql").read_text(encoding="utf-8")


def split_statements(script: str) -> list[str]:
    """The statements of a plain DDL script: `--` comments dropped, split at `;` ending a line."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    parts = re.split(r";\s*$", "\n".join(lines), flags=re.MULTILINE)
    return [part.strip() for part in parts if part.strip()]


def init_database(url: str) -> str:
    """Upgrade the schema at `url` to head (creating it if missing); one line saying what was done.

    Raises PermanentError for a bad URL or a refused login, RetryableError when the server cannot
    be reached; both with a one-line message that never shows the password.
    """
    parsed = parse_url(url)
    done = upgrade(url)
    tables = ", ".join(sorted(metadata.tables))
    created = sorted(set(metadata.tables) - done.tables_before)
    if not created:
        return f"tables {tables} already exist in {redact(parsed)}; nothing to do"
    return f"created tables {', '.join(created)} in {redact(parsed)}"
