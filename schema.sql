-- nightwatch: canonical MySQL / MariaDB schema.
--
-- A superset of the original nightwatch `task` table: every column added since has a default, so
-- rows inserted by the original system (or by hand, naming only name/namespace/info/status/user_id)
-- keep working. Safe to run more than once.
--
-- Timestamps are naive UTC. The defaults below use the session time zone: run the server (or the
-- inserting session) in UTC so hand-inserted rows get UTC `created_at` values too.
-- `info` is MEDIUMTEXT (the original TEXT capped it at 64 kB).
-- `status` uses a binary collation so that 'normal' is not 'Normal' (as on SQLite).
-- The (user_id, id) and (namespace, id) indexes serve the REST API's newest-first listings; on a
-- table made by an older version, `nightwatch db init` adds any index that is missing.
-- `priority` (higher first) and `queue` (the queue a task was launched under, written by dispatch)
-- serve the queues: docs/queues.md shows which index each dispatch read uses.

CREATE TABLE IF NOT EXISTS task (
    id               BIGINT       NOT NULL AUTO_INCREMENT,
    name             VARCHAR(45)  NOT NULL,
    namespace        VARCHAR(45)  NOT NULL,
    info             MEDIUMTEXT   NULL,
    status           VARCHAR(45)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT 'Normal',
    user_id          BIGINT       NULL     DEFAULT 0,
    created_at       DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at       DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    message          TEXT         NULL,
    job_name         VARCHAR(253) NULL,
    version          BIGINT       NOT NULL DEFAULT 0,
    started_at       DATETIME(6)  NULL,
    finished_at      DATETIME(6)  NULL,
    cancel_requested BOOLEAN      NOT NULL DEFAULT 0,
    attempt          INT          NOT NULL DEFAULT 1,
    next_attempt_at  DATETIME(6)  NULL,
    run_at           DATETIME(6)  NULL,
    priority         INT          NOT NULL DEFAULT 0,
    queue            VARCHAR(63)  NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_task_name_namespace (name, namespace),
    KEY ix_task_status_id (status, id),
    KEY ix_task_status_next_attempt_at_id (status, next_attempt_at, id),
    KEY ix_task_status_next_attempt_at_priority_id (status, next_attempt_at, priority, id),
    KEY ix_task_status_next_attempt_at_user_id_id (status, next_attempt_at, user_id, id),
    KEY ix_task_status_queue_user_id (status, queue, user_id),
    KEY ix_task_user_id_id (user_id, id),
    KEY ix_task_namespace_id (namespace, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- A queue's run state, shared by every replica: a paused queue launches nothing new (its running
-- Jobs go on). A queue without a row is running.
CREATE TABLE IF NOT EXISTS queue_state (
    name       VARCHAR(63)  NOT NULL,
    paused     BOOLEAN      NOT NULL DEFAULT 0,
    updated_at DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- One row (id = 1): the fencing epoch. A new leader increments it; every leader write is
-- conditional on it still being the leader's own.
CREATE TABLE IF NOT EXISTS leader_epoch (
    id    INT    NOT NULL,
    epoch BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

INSERT IGNORE INTO leader_epoch (id, epoch) VALUES (1, 0);
