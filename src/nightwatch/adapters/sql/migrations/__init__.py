"""nightwatch's Alembic migrations: `env.py` and `versions/`, shipped inside the package.

Nothing here is run by importing it: `nightwatch.adapters.sql.migrate` points Alembic at this
directory (`nightwatch.adapters.sql:migrations`) and hands it a connection, so no alembic.ini is
needed at run time.
"""
