-- One row per worker deployment of a namespace.
CREATE TABLE worker_deployments (
    namespace_id        TEXT    NOT NULL,
    name                TEXT    NOT NULL,
    -- The deployment's state (cluster/matching/deployments.py), serialized; opaque here.
    state               BLOB    NOT NULL,
    -- Optimistic concurrency: a write names the version it read (0: none stored yet).
    version             INTEGER NOT NULL,
    PRIMARY KEY (namespace_id, name)
);
