-- One row per task queue and task type that has a configuration (UpdateTaskQueueConfig).
CREATE TABLE task_queue_configs (
    namespace_id        TEXT    NOT NULL,
    name                TEXT    NOT NULL,
    task_type           INTEGER NOT NULL,
    -- temporal.api.taskqueue.v1.TaskQueueConfig, serialized; opaque here.
    config              BLOB    NOT NULL,
    -- Optimistic concurrency: an update names the version it read (0: none stored yet).
    version             INTEGER NOT NULL,
    PRIMARY KEY (namespace_id, name, task_type)
);
