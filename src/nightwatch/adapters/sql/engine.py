"""Engines tuned for months of uptime, for MySQL/MariaDB (PyMySQL), PostgreSQL (psycopg 3) and SQLite.

MySQL: connections are pinged before use and recycled before a server or proxy idle timeout
can cut them, every session runs in UTC so server-side timestamp defaults are UTC too, and
connections share one TLS context (see `_SharedTlsConnection`), and DATETIME values are parsed by
the C `datetime.fromisoformat` (see `MYSQL_CONVERSIONS`).
PostgreSQL: the same pool tuning, and every session in UTC.
MariaDB and PostgreSQL: a session idle inside a transaction is ended (`IDLE_TRANSACTION_TIMEOUT_S`).
SQLite: WAL and a busy timeout, so the CLI (another process) can write while the service runs.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import pymysql
import sqlalchemy as sa
from pymysql import converters
from pymysql.constants import FIELD_TYPE
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine, make_url

from nightwatch.domain.errors import PermanentError

SQLITE_BUSY_TIMEOUT_MS = 1500
"""Short, because the adapter's own retries wait again; a few attempts stay well under ten seconds."""

MYSQL_CONNECT_TIMEOUT_S = 2
POSTGRES_CONNECT_TIMEOUT_S = 2
IDLE_TRANSACTION_TIMEOUT_S = 5
"""A session idle this long inside a transaction is ended by the server (MariaDB, PostgreSQL; MySQL
has no such setting). nightwatch never waits between the statements of a transaction, so one idle
that long is a frozen or cut-off process (SIGSTOP, a paused VM, a partition), and while its leader
write is open it holds the fencing row: the successor's `advance_epoch` would wait for it (50 s, then
again) instead of taking over within seconds."""
POOL_RECYCLE_S = 1800
"""Below MySQL's default wait_timeout (8 h) and the idle cut-offs of common proxies and NATs."""


def parse_url(url: str) -> URL:
    """The URL, or a one-line PermanentError naming it without its password."""
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError) as error:
        raise PermanentError(f"not a database URL: {redact(url)!r}") from error
    if parsed.get_backend_name() == "postgres":
        # Heroku-style postgres://, which SQLAlchemy no longer reads: the same server, spelled out.
        _, plus, driver = parsed.drivername.partition("+")
        parsed = parsed.set(drivername=f"postgresql{plus}{driver}")
    if parsed.get_backend_name() not in ("sqlite", "mysql", "mariadb", "postgresql"):
        raise PermanentError(f"unsupported database {parsed.get_backend_name()!r} in {redact(url)!r}")
    return parsed


def redact(url: str | URL) -> str:
    """A URL safe to print: the password masked."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        return "<unparseable URL>"
    return parsed.render_as_string(hide_password=True)


def create_engine_for(url: str | URL, *, pool_size: int = 5, echo: bool = False, **kwargs: Any) -> Engine:
    """An engine for `url` (sqlite:///path, mysql+pymysql://..., mariadb+pymysql://...,
    postgresql+psycopg://...).

    Nothing connects here; the first query does. Extra keyword arguments go to `create_engine`.
    """
    parsed = url if isinstance(url, URL) else parse_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        engine = sa.create_engine(
            parsed,
            echo=echo,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            **kwargs,
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        return engine
    if backend == "postgresql":
        if parsed.drivername != "postgresql+psycopg":
            # psycopg 3 is the driver nightwatch ships with; a bare postgresql:// would ask for psycopg2.
            parsed = parsed.set(drivername="postgresql+psycopg")
        connect = {
            "connect_timeout": POSTGRES_CONNECT_TIMEOUT_S,
            "options": f"-c timezone=UTC -c idle_in_transaction_session_timeout={IDLE_TRANSACTION_TIMEOUT_S * 1000}",
        }
        return _pooled(parsed, pool_size, connect, echo=echo, **kwargs)
    if parsed.get_driver_name() in ("", "mysqldb"):
        # PyMySQL is the driver nightwatch ships with; a bare mysql:// would ask for mysqlclient.
        parsed = parsed.set(drivername=f"{backend}+pymysql")
    connect = {"connect_timeout": MYSQL_CONNECT_TIMEOUT_S, "charset": "utf8mb4", "conv": MYSQL_CONVERSIONS}
    engine = _pooled(parsed, pool_size, connect, echo=echo, **kwargs)
    event.listen(engine, "do_connect", _mysql_do_connect)
    event.listen(engine, "connect", _mysql_on_connect)
    return engine


def _pooled(url: sa.URL, pool_size: int, connect_args: dict[str, Any], **options: Any) -> sa.Engine:
    """A server engine tuned for months of uptime: pre-pinged, recycled, bursts up to twice the pool."""
    return sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=POOL_RECYCLE_S,
        connect_args=connect_args,
        **options,
    )


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # SQLite stores whatever bytes it is given: `CAST(X'FF' AS TEXT)` typed by hand is invalid UTF-8,
    # and the default decoder raises on it mid-fetch, so one such row broke every listing it was in.
    # Decoded with U+FFFD instead, the row reads (and fails validation with a message) like any other.
    dbapi_connection.text_factory = _decode_lossy
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _decode_lossy(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


class _SharedTlsConnection(pymysql.connections.Connection):  # type: ignore[misc]
    """A PyMySQL connection whose opportunistic TLS ("PREFERRED": no ssl options given) uses one
    context made once, not a fresh one per connection. PyMySQL >= 1.2 builds that fresh context
    every time, and loading the system CA store costs about 19 ms of CPU under the GIL: in a burst
    the pool's new connections cost more than the statements they run. A context is made to be
    shared by many sockets; options given in the URL (ssl_ca, ...) still build their own."""

    _preferred: Any = None
    _lock = threading.Lock()

    def _create_ssl_ctx(self, sslp: Any) -> Any:
        if sslp != {}:
            return super()._create_ssl_ctx(sslp)
        with _SharedTlsConnection._lock:
            if _SharedTlsConnection._preferred is None:
                _SharedTlsConnection._preferred = super()._create_ssl_ctx({})
            return _SharedTlsConnection._preferred


def mysql_datetime(value: bytes | str) -> datetime | str | Any:
    """A DATETIME or TIMESTAMP value as PyMySQL's own converter reads it (an impossible date such as
    0000-00-00 stays a string), but parsed in C: its regular expression was a fifth of the CPU of
    reading a task row, and sync reads thousands of them a second in a burst."""
    text = value.decode("ascii", "replace") if isinstance(value, bytes | bytearray) else value
    if len(text) >= 19:  # a whole date and time: what fromisoformat and PyMySQL read alike
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                return parsed
    return converters.convert_datetime(value)


MYSQL_CONVERSIONS = {
    **converters.conversions,
    FIELD_TYPE.DATETIME: mysql_datetime,
    FIELD_TYPE.TIMESTAMP: mysql_datetime,
}


def _mysql_do_connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
    return _SharedTlsConnection(*cargs, **cparams)


def _mysql_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SET time_zone = '+00:00'")
        if "mariadb" in str(dbapi_connection.get_server_info()).lower():
            cursor.execute(f"SET SESSION idle_transaction_timeout = {IDLE_TRANSACTION_TIMEOUT_S}")
    finally:
        cursor.close()
