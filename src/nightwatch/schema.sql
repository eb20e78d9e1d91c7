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
    schedule_id      BIGINT       NULL,
    slot_at          DATETIME(6)  NULL,
    priority         INT          NOT NULL DEFAULT 0,
    queue            VARCHAR(63)  NULL,
    PRIMARY KEY (id),
    UNIQUE KEY uq_task_name_namespace (name, namespace),
    UNIQUE KEY uq_task_schedule_id_slot_at (schedule_id, slot_at),
    KEY ix_task_status_id (status, id),
    KEY ix_task_status_next_attempt_at_id (status, next_attempt_at, id),
    KEY ix_task_status_next_attempt_at_priority_id (status, next_attempt_at, priority, id),
    KEY ix_task_status_next_attempt_at_user_id_id (status, next_attempt_at, user_id, id),
    KEY ix_task_status_queue_user_id (status, queue, user_id),
    KEY ix_task_user_id_id (user_id, id),
    KEY ix_task_namespace_id (namespace, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Schedules (docs/schedules.md): a task template fired at the slots of a cron spec. A slot's task
-- carries schedule_id and slot_at above, unique together, so a slot makes one task at most.
CREATE TABLE IF NOT EXISTS schedule (
    id                        BIGINT       NOT NULL AUTO_INCREMENT,
    name                      VARCHAR(45)  NOT NULL,
    namespace                 VARCHAR(45)  NOT NULL,
    user_id                   BIGINT       NOT NULL DEFAULT 0,
    info                      MEDIUMTEXT   NOT NULL,
    cron                      VARCHAR(255) NOT NULL,
    timezone                  VARCHAR(64)  NOT NULL DEFAULT 'UTC',
    concurrency               VARCHAR(16)  NOT NULL DEFAULT 'Allow',
    starting_deadline_seconds BIGINT       NULL,
    catch_up                  INT          NOT NULL DEFAULT 1,
    keep                      INT          NOT NULL DEFAULT 10,
    suspended                 BOOLEAN      NOT NULL DEFAULT 0,
    version                   BIGINT       NOT NULL DEFAULT 0,
    created_at                DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at                DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    last_slot_at              DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    last_fired_at             DATETIME(6)  NULL,
    fired                     BIGINT       NOT NULL DEFAULT 0,
    missed                    BIGINT       NOT NULL DEFAULT 0,
    skipped                   BIGINT       NOT NULL DEFAULT 0,
    PRIMARY KEY (id),
    UNIQUE KEY uq_schedule_name_namespace (name, namespace),
    KEY ix_schedule_user_id_id (user_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- A task's history: one row per applied status change (and the creation), written in the same
-- transaction as the change. No foreign key: a task row deleted by hand keeps its history.
CREATE TABLE IF NOT EXISTS task_event (
    id            BIGINT       NOT NULL AUTO_INCREMENT,
    task_id       BIGINT       NOT NULL,
    at            DATETIME(6)  NOT NULL,
    attempt       INT          NOT NULL DEFAULT 1,
    from_status   VARCHAR(45)  NULL,
    to_status     VARCHAR(45)  NOT NULL,
    job_name      VARCHAR(253) NULL,
    failure_class VARCHAR(32)  NOT NULL DEFAULT '',
    reason        VARCHAR(128) NOT NULL DEFAULT '',
    message       TEXT         NULL,
    epoch         BIGINT       NULL,
    PRIMARY KEY (id),
    KEY ix_task_event_task_id_id (task_id, id)
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

-- The transactional outbox: one row per terminal change or retry, written in the status write's
-- transaction. The webhook sender and the log capture keep their progress on it.
CREATE TABLE IF NOT EXISTS outbox (
    id              BIGINT      NOT NULL AUTO_INCREMENT,
    task_id         BIGINT      NOT NULL,
    attempt         INT         NOT NULL DEFAULT 1,
    event           VARCHAR(16) NOT NULL,
    message         TEXT        NULL,
    created_at      DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    state           VARCHAR(16) NOT NULL DEFAULT 'pending',
    tries           INT         NOT NULL DEFAULT 0,
    next_attempt_at DATETIME(6) NULL,
    delivered_to    TEXT        NULL,
    last_error      TEXT        NULL,
    log_pending     BOOLEAN     NOT NULL DEFAULT 0,
    PRIMARY KEY (id),
    KEY ix_outbox_state_id (state, id),
    KEY ix_outbox_task_id_id (task_id, id),
    KEY ix_outbox_log_pending_id (log_pending, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- The last `logs.keep_bytes` of each finished attempt's output, kept after its pod is gone.
CREATE TABLE IF NOT EXISTS task_log (
    task_id     BIGINT      NOT NULL,
    attempt     INT         NOT NULL,
    output      MEDIUMTEXT  NULL,
    truncated   BOOLEAN     NOT NULL DEFAULT 0,
    captured_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (task_id, attempt)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
