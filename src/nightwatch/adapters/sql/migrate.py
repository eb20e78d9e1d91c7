"""Schema migrations: `nightwatch db upgrade`, `db current`, and the check `nightwatch run` makes.

Alembic runs the revisions in `migrations/` on one connection that first takes a lock, so several
replicas upgrading at once take turns and the later ones find nothing to do: MySQL/MariaDB
`GET_LOCK`, PostgreSQL `pg_advisory_lock` (both held by the session, across the DDL's implicit
commits), SQLite an exclusive `flock` on a file beside the database.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import exc
from sqlalchemy.engine import URL, Connection

from nightwatch.adapters.sql.engine import create_engine_for, parse_url, redact
from nightwatch.adapters.sql.retry import translate
from nightwatch.domain.errors import RetryableError

SCRIPT_LOCATION = "nightwatch.adapters.sql:migrations"
LOCK_NAME = "nightwatch.schema_migration"
PG_LOCK_KEY = 0x6E77_6D69_6772  # "nwmigr"
LOCK_TIMEOUT_S = 300


@dataclass(frozen=True)
class SchemaRevision:
    """Where a database's schema is (`current`, None before any migration) and where the code is."""

    current: str | None
    head: str

    @property
    def is_head(self) -> bool:
        return self.current == self.head

    @property
    def known(self) -> bool:
        """False for a revision this nightwatch does not have: a newer one upgraded the database."""
        return self.current is None or self.current in _revisions()

    def describe(self) -> str:
        where = self.current or "none"
        if self.is_head:
            return f"{where} (head)"
        if not self.known:
            return f"{where} (unknown to this nightwatch, whose head is {self.head}: a newer version upgraded it)"
        return f"{where} (behind head {self.head}: run 'nightwatch db upgrade')"


@dataclass(frozen=True)
class Upgrade:
    before: str | None
    after: str
    tables_before: frozenset[str]
    tables_after: frozenset[str]


def _config(conn: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    if conn is not None:
        config.attributes["connection"] = conn
    return config


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head_revision() -> str:
    head = _scripts().get_current_head()
    assert head is not None, "nightwatch ships at least one revision"
    return head


def _revisions() -> set[str]:
    return {script.revision for script in _scripts().walk_revisions()}


def _current(conn: Connection) -> str | None:
    revision = MigrationContext.configure(conn).get_current_revision()
    conn.commit()
    return revision


def schema_revision(url: str) -> SchemaRevision:
    """The database's revision beside the code's head (reads only; creates nothing)."""
    parsed = parse_url(url)
    engine = create_engine_for(parsed)
    try:
        with engine.connect() as conn:
            return SchemaRevision(_current(conn), head_revision())
    except exc.SQLAlchemyError as error:
        raise translate(error, f"cannot read the schema revision of {redact(parsed)}") from error
    finally:
        engine.dispose()


def upgrade(url: str) -> Upgrade:
    """Upgrade the database at `url` to head under the migration lock; a no-op when it is there."""
    parsed = parse_url(url)
    engine = create_engine_for(parsed)
    try:
        with engine.connect() as conn, _migration_lock(conn, parsed):
            before = _current(conn)
            tables_before = frozenset(sa.inspect(conn).get_table_names())
            conn.commit()
            command.upgrade(_config(conn), "head")
            conn.commit()
            after = _current(conn)
            tables_after = frozenset(sa.inspect(conn).get_table_names())
            conn.commit()
    except exc.SQLAlchemyError as error:
        raise translate(error, f"cannot upgrade {redact(parsed)}") from error
    finally:
        engine.dispose()
    assert after is not None
    return Upgrade(before, after, tables_before, tables_after)


@contextmanager
def _migration_lock(conn: Connection, url: URL) -> Iterator[None]:
    dialect = conn.dialect.name
    if dialect in ("mysql", "mariadb"):
        got = conn.execute(sa.text("SELECT GET_LOCK(:name, :timeout)"), {"name": LOCK_NAME, "timeout": LOCK_TIMEOUT_S})
        if got.scalar() != 1:
            raise RetryableError(f"another 'nightwatch db upgrade' held the migration lock for {LOCK_TIMEOUT_S} s")
        conn.commit()
        try:
            yield
        finally:
            conn.rollback()
            conn.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": LOCK_NAME})
            conn.commit()
    elif dialect == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": PG_LOCK_KEY})
        conn.commit()
        try:
            yield
        finally:
            conn.rollback()
            conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": PG_LOCK_KEY})
            conn.commit()
    else:
        database = url.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            yield
            return
        with open(Path(f"{database}.migrate-lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
