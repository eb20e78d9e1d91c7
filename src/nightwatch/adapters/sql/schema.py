"""`nightwatch db init`: create the tables (if missing) and the fencing-epoch row.

MySQL/MariaDB get the canonical `schema.sql` (shipped in the package as a copy that a test keeps
identical to the top-level file); SQLite gets the same schema from the SQLAlchemy metadata,
which a test keeps in step with `schema.sql`. Both are idempotent, and both add the indexes a
newer version introduced to a table made by an older one.
"""

from __future__ import annotations

import re
from importlib import resources

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Connection

from nightwatch.adapters.sql.engine import create_engine_for, parse_url, redact
from nightwatch.adapters.sql.retry import translate
from nightwatch.adapters.sql.tables import EPOCH_ROW_ID, leader_epoch, metadata


def schema_sql() -> str:
    """The packaged copy of the canonical MySQL schema."""
    return resources.files("nightwatch").joinpath("schema.sql").read_text(encoding="utf-8")


def split_statements(script: str) -> list[str]:
    """The statements of a plain DDL script: `--` comments dropped, split at `;` ending a line."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    parts = re.split(r";\s*$", "\n".join(lines), flags=re.MULTILINE)
    return [part.strip() for part in parts if part.strip()]


def init_database(url: str) -> str:
    """Create the schema at `url` if missing; return one line saying what was done.

    Raises PermanentError for a bad URL or a refused login, RetryableError when the server cannot
    be reached; both with a one-line message that never shows the password.
    """
    parsed = parse_url(url)
    engine = create_engine_for(parsed)
    tables = ", ".join(sorted(metadata.tables))
    try:
        with engine.begin() as conn:
            existing = set(sa.inspect(conn).get_table_names())
            if parsed.get_backend_name() == "sqlite":
                metadata.create_all(conn, checkfirst=True)
                conn.execute(sa.insert(leader_epoch).prefix_with("OR IGNORE").values(id=EPOCH_ROW_ID, epoch=0))
            else:
                _run_script(conn, schema_sql())
            _add_missing_indexes(conn)
    except exc.SQLAlchemyError as error:
        raise translate(error, f"cannot initialise {redact(parsed)}") from error
    finally:
        engine.dispose()
    created = sorted(set(metadata.tables) - existing)
    if not created:
        return f"tables {tables} already exist in {redact(parsed)}; nothing to do"
    return f"created tables {', '.join(created)} in {redact(parsed)}"


def _add_missing_indexes(conn: Connection) -> None:
    """Indexes added after a table was first made: `CREATE TABLE IF NOT EXISTS` skips an old table."""
    for table in metadata.sorted_tables:
        for index in table.indexes:
            index.create(conn, checkfirst=True)


def _run_script(conn: Connection, script: str) -> None:
    for statement in split_statements(script):
        conn.exec_driver_sql(statement)
