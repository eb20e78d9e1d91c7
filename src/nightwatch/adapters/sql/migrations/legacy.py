"""The original Go nightwatch's `task` table, taken in place to revision 0001's shape."""

from __future__ import annotations

from sqlalchemy.engine import Connection

from nightwatch.domain.errors import PermanentError


def upgrade_legacy_task(bind: Connection) -> None:
    raise PermanentError(
        "a 'task' table without nightwatch's columns: upgrading the original nightwatch's table is not supported yet"
    )
