"""The original Go nightwatch's `task` table, as its DDL made it, for the upgrade tests."""

from __future__ import annotations

LEGACY_DDL = """
CREATE TABLE task (
    id         bigint(20)  NOT NULL AUTO_INCREMENT,
    name       varchar(45) NOT NULL DEFAULT '',
    namespace  varchar(45) NOT NULL DEFAULT '',
    info       TEXT        NOT NULL,
    status     varchar(45) NOT NULL DEFAULT '',
    user_id    bigint(20)  NOT NULL DEFAULT 0,
    created_at datetime    DEFAULT CURRENT_TIMESTAMP,
    updated_at datetime    ON UPDATE CURRENT_TIMESTAMP,
    PRIMARY KEY (id),
    UNIQUE KEY (name, namespace)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""

LEGACY_STATUSES = ("Normal", "Pending", "Running", "Succeeded", "Failed", "Unknown", "normal")
