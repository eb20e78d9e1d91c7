"""Alembic's environment for nightwatch: online only, on the connection `migrate.py` passes in.

`migrate.upgrade` holds the migration lock on that same connection, so two replicas running
`nightwatch db upgrade` at once take turns. Autogenerate compares against `tables.metadata`.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from nightwatch.adapters.sql.tables import metadata


def run() -> None:
    if context.is_offline_mode():
        raise RuntimeError("nightwatch's migrations run online only: give them a database connection")
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("nightwatch's migrations are run by nightwatch.adapters.sql.migrate, with a connection")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things: later revisions use op.batch_alter_table, copied there.
        render_as_batch=connection.dialect.name == "sqlite",
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
