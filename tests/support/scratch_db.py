"""Throwaway MariaDB databases of their own, for the schema and migration tests, and what they hold."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from tests.support.services import require_mariadb_url


@contextmanager
def scratch_mariadb(prefix: str = "nightwatch_migr") -> Iterator[str]:
    """The URL of an empty database (utf8mb4, the server's default collation), dropped afterwards."""
    server = require_mariadb_url()
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = sa.create_engine(server)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    try:
        yield f"{server}/{name}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        admin.dispose()


def mariadb_shape(url: str) -> dict[str, Any]:
    """Every table's columns (type, null, default, collation, order), indexes and options, from
    information_schema: two databases with equal shapes have the same schema."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            tables = conn.exec_driver_sql(
                "SELECT table_name, engine, table_collation FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND table_name <> 'alembic_version' ORDER BY table_name"
            ).all()
            columns = conn.exec_driver_sql(
                "SELECT table_name, ordinal_position, column_name, column_type, is_nullable, column_default, "
                "collation_name, extra FROM information_schema.columns "
                "WHERE table_schema = DATABASE() AND table_name <> 'alembic_version' "
                "ORDER BY table_name, ordinal_position"
            ).all()
            indexes = conn.exec_driver_sql(
                "SELECT table_name, index_name, non_unique, seq_in_index, column_name FROM information_schema.statistics "
                "WHERE table_schema = DATABASE() AND table_name <> 'alembic_version' "
                "ORDER BY table_name, index_name, seq_in_index"
            ).all()
    finally:
        engine.dispose()
    return {
        "tables": [tuple(r) for r in tables],
        "columns": [tuple(r) for r in columns],
        "indexes": [tuple(r) for r in indexes],
    }
