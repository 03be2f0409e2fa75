-- Hourglass embedded store, schema version 1.
--
-- Mirrors the reference's Cassandra layout: everything one workflow transition commits (shard fence,
-- execution row, current-run pointer, transfer and timer tasks) is keyed by shard_id first, so the
-- SQLite store's single transaction and Cassandra's single-partition conditional batch cover the same rows.
-- Column names equal the field names of the records in hourglass.persistence.records.
-- Small rows read by key range are WITHOUT ROWID (clustered by primary key, like Cassandra clustering
-- columns); tables holding large blobs (mutable state, history, memos) keep a rowid, as SQLite advises.

-- ---- shard partition ----------------------------------------------------------------------------------

CREATE TABLE shards (
    shard_id            INTEGER NOT NULL PRIMARY KEY,
    -- Fences writers: every commit of the shard is conditional on it.
    range_id            INTEGER NOT NULL,
    transfer_ack_level  INTEGER NOT NULL DEFAULT 0,
    timer_ack_level_ms  INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE executions (
    shard_id            INTEGER NOT NULL,
    namespace_id        TEXT    NOT NULL,
    workflow_id         TEXT    NOT NULL,
    run_id              TEXT    NOT NULL,
    -- Mutable state, serialized by the history role; opaque to the store.
    state               BLOB    NOT NULL,
    -- Optimistic concurrency: a write names the version it read.
    db_record_version   INTEGER NOT NULL,
    PRIMARY KEY (shard_id, namespace_id, workflow_id, run_id)
);

CREATE TABLE current_executions (
    shard_id            INTEGER NOT NULL,
    namespace_id        TEXT    NOT NULL,
    workflow_id         TEXT    NOT NULL,
    run_id              TEXT    NOT NULL,
    -- RunStatus as an int (1 running, 2 closed).
    status              INTEGER NOT NULL,
    -- temporal.api.enums.v1.WorkflowExecutionStatus as an int.
    execution_status    INTEGER NOT NULL,
    create_request_id   TEXT    NOT NULL,
    start_time_ms       INTEGER NOT NULL DEFAULT 0,
    close_time_ms       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (shard_id, namespace_id, workflow_id)
) WITHOUT ROWID;

CREATE TABLE transfer_tasks (
    shard_id            INTEGER NOT NULL,
    task_id             INTEGER NOT NULL,
    namespace_id        TEXT    NOT NULL,
    workflow_id         TEXT    NOT NULL,
    run_id              TEXT    NOT NULL,
    kind                TEXT    NOT NULL,
    data                BLOB    NOT NULL,
    PRIMARY KEY (shard_id, task_id)
) WITHOUT ROWID;

CREATE TABLE timer_tasks (
    shard_id            INTEGER NOT NULL,
    fire_time_ms        INTEGER NOT NULL,
    task_id             INTEGER NOT NULL,
    namespace_id        TEXT    NOT NULL,
    workflow_id         TEXT    NOT NULL,
    run_id              TEXT    NOT NULL,
    kind                TEXT    NOT NULL,
    data                BLOB    NOT NULL,
    PRIMARY KEY (shard_id, fire_time_ms, task_id)
) WITHOUT ROWID;

-- ---- history ------------------------------------------------------------------------------------------

-- A node is a batch of events starting at event id node_id. Several txn_ids may exist for one node_id:
-- readers take the highest one not above the last committed txn id of the run.
CREATE TABLE history_node (
    namespace_id        TEXT    NOT NULL,
    workflow_id         TEXT    NOT NULL,
    run_id              TEXT    NOT NULL,
    node_id             INTEGER NOT NULL,
    txn_id              INTEGER NOT NULL,
    events              BLOB    NOT NULL,
    last_event_id       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (namespace_id, workflow_id, run_id, node_id, txn_id)
);

-- ---- matching -----------------------------------------------------------------------------------------

-- A task-queue partition's metadata row; its range_id is the matching owner's lease.
CREATE TABLE task_queues (
    namespace_id        TEXT    NOT NULL,
    name                TEXT    NOT NULL,
    -- temporal.api.enums.v1.TaskQueueType as an int.
    task_type           INTEGER NOT NULL,
    partition           INTEGER NOT NULL,
    range_id            INTEGER NOT NULL,
    ack_level           INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (namespace_id, name, task_type, partition)
) WITHOUT ROWID;

-- Backlog tasks of a partition, keyed like their partition row (the queue_* columns) then task_id.
CREATE TABLE queue_tasks (
    queue_namespace_id  TEXT    NOT NULL,
    queue_name          TEXT    NOT NULL,
    queue_task_type     INTEGER NOT NULL,
    queue_partition     INTEGER NOT NULL,
    task_id             INTEGER NOT NULL,
    namespace_id        TEXT    NOT NULL,
    workflow_id         TEXT    NOT NULL,
    run_id              TEXT    NOT NULL,
    scheduled_event_id  INTEGER NOT NULL,
    create_time_ms      INTEGER NOT NULL DEFAULT 0,
    expiry_time_ms      INTEGER NOT NULL DEFAULT 0,
    data                BLOB    NOT NULL,
    PRIMARY KEY (queue_namespace_id, queue_name, queue_task_type, queue_partition, task_id)
) WITHOUT ROWID;

-- ---- namespaces ---------------------------------------------------------------------------------------

CREATE TABLE namespaces (
    id                    TEXT    NOT NULL PRIMARY KEY,
    name                  TEXT    NOT NULL UNIQUE,
    -- NamespaceInfo + NamespaceConfig, serialized by the frontend.
    data                  BLOB    NOT NULL,
    notification_version  INTEGER NOT NULL DEFAULT 0
);

-- ---- visibility ---------------------------------------------------------------------------------------

CREATE TABLE visibility (
    namespace_id        TEXT    NOT NULL,
    workflow_id         TEXT    NOT NULL,
    run_id              TEXT    NOT NULL,
    workflow_type       TEXT    NOT NULL,
    task_queue          TEXT    NOT NULL,
    -- temporal.api.enums.v1.WorkflowExecutionStatus as an int.
    status              INTEGER NOT NULL,
    start_time_ms       INTEGER NOT NULL,
    execution_time_ms   INTEGER NOT NULL DEFAULT 0,
    close_time_ms       INTEGER NOT NULL DEFAULT 0,
    history_length      INTEGER NOT NULL DEFAULT 0,
    memo                BLOB    NOT NULL,
    search_attributes   BLOB    NOT NULL,
    PRIMARY KEY (namespace_id, workflow_id, run_id)
);

-- Default listing order (newest start first, ties by run id) and keyset paging.
CREATE INDEX visibility_by_start_time
    ON visibility (namespace_id, start_time_ms DESC, run_id DESC);
-- The common list filters (ExecutionStatus, WorkflowType, CloseTime), each ordered by start time.
CREATE INDEX visibility_by_status
    ON visibility (namespace_id, status, start_time_ms DESC, run_id DESC);
CREATE INDEX visibility_by_type
    ON visibility (namespace_id, workflow_type, start_time_ms DESC, run_id DESC);
CREATE INDEX visibility_by_close_time
    ON visibility (namespace_id, close_time_ms DESC, run_id DESC);

-- ---- cluster ------------------------------------------------------------------------------------------

-- One row: facts fixed when the cluster was created.
CREATE TABLE cluster_metadata (
    id                    INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    cluster_name          TEXT    NOT NULL,
    history_shard_count   INTEGER NOT NULL
);
