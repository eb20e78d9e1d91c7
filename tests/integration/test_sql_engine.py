"""The server engines' connections, on the machine's MariaDB (which offers no TLS) and PostgreSQL."""

from __future__ import annotations

import ssl
import time

import pytest
import sqlalchemy as sa

from nightwatch.adapters.sql import SqlTaskRepository, create_engine_for, init_database
from nightwatch.adapters.sql.engine import IDLE_TRANSACTION_TIMEOUT_S
from nightwatch.adapters.sql.tables import leader_epoch
from tests.support.services import require_mariadb_url
from tests.support.sql_backends import empty_mariadb, empty_postgres


def test_mysql_connections_share_one_tls_context_and_still_reach_a_server_without_tls() -> None:
    engine = create_engine_for(f"{require_mariadb_url()}/test", pool_size=2)
    try:
        with engine.connect() as first, engine.connect() as second:
            one, other = first.connection.dbapi_connection, second.connection.dbapi_connection
            assert one is not other
            # PyMySQL's opportunistic TLS: tried with one context made once, not one per connection.
            assert isinstance(one.ctx, ssl.SSLContext) and one.ctx is other.ctx  # type: ignore[union-attr]
            assert first.exec_driver_sql("SELECT 1").scalar() == 1
    finally:
        engine.dispose()


def test_tls_options_in_the_url_still_build_their_own_context_and_require_tls() -> None:
    engine = create_engine_for(f"{require_mariadb_url()}/test?ssl_verify_cert=false", pool_size=1)
    try:
        with pytest.raises(sa.exc.OperationalError, match=r"(?i)ssl"), engine.connect():
            pass
    finally:
        engine.dispose()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", ["mariadb", "postgresql"])
def test_a_session_frozen_inside_a_transaction_stops_blocking_the_successor(backend: str) -> None:
    """A leader frozen mid-write holds the fencing row (its CAS reads it FOR SHARE): the server ends
    that session once it has been idle IDLE_TRANSACTION_TIMEOUT_S, so `advance_epoch` goes through."""
    url = empty_mariadb() if backend == "mariadb" else empty_postgres()
    init_database(url)
    frozen_engine, successor = create_engine_for(url, pool_size=1), SqlTaskRepository(create_engine_for(url))
    try:
        successor.advance_epoch()
        frozen = frozen_engine.connect()
        transaction = frozen.begin()
        frozen.execute(sa.select(leader_epoch.c.epoch).with_for_update(read=True))  # what a CAS write holds
        started = time.monotonic()  # the frozen session sends nothing from now on
        successor.advance_epoch()
        waited = time.monotonic() - started
        assert IDLE_TRANSACTION_TIMEOUT_S - 0.5 <= waited < IDLE_TRANSACTION_TIMEOUT_S + 20
        with pytest.raises(sa.exc.DBAPIError):  # its session is gone: a thawed leader writes nothing
            frozen.exec_driver_sql("SELECT 1")
            transaction.commit()
    finally:
        frozen_engine.dispose()
        successor.engine.dispose()
