"""Finding the real services integration tests need, with one rule for when they are missing.

Under CI (CI=true) a missing service is a failure: a green run must mean the tests ran. On a
developer's machine it is a skip that says what is missing.
"""

from __future__ import annotations

import os
import socket

import pytest
import sqlalchemy as sa

MARIADB_HOST = "127.0.0.1"
MARIADB_PORT = 3306
POSTGRES_HOST = "127.0.0.1"
POSTGRES_PORT = 5432


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_service(host: str, port: int, name: str) -> None:
    """Return if `name` answers on host:port; otherwise fail under CI, skip elsewhere."""
    if port_open(host, port):
        return
    reason = f"{name} is not reachable on {host}:{port}"
    if in_ci():
        pytest.fail(f"{reason} (CI=true: integration services must be running)", pytrace=False)
    pytest.skip(f"{reason}; start it (scripts/ensure-services.sh) to run this test")


def require_mariadb_url() -> str:
    """The server URL (no database) of the shared MariaDB, user root with no password."""
    require_service(MARIADB_HOST, MARIADB_PORT, "MariaDB")
    return f"mysql+pymysql://root@{MARIADB_HOST}:{MARIADB_PORT}"


def require_postgres_url() -> str:
    """The server URL (no database) of the shared PostgreSQL, user postgres with trust auth."""
    require_service(POSTGRES_HOST, POSTGRES_PORT, "PostgreSQL")
    return f"postgresql+psycopg://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}"


def server_answers(url: str) -> bool:
    """Whether the database server at `url` runs a query now (one fresh connection, 1 s to connect)."""
    engine = sa.create_engine(url, connect_args={"connect_timeout": 1}, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return True
    except sa.exc.SQLAlchemyError:
        return False
    finally:
        engine.dispose()
