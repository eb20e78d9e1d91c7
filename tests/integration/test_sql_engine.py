"""The MySQL engine's connections, on the machine's MariaDB (which offers no TLS)."""

from __future__ import annotations

import ssl

import pytest
import sqlalchemy as sa

from nightwatch.adapters.sql import create_engine_for
from tests.support.services import require_mariadb_url


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
