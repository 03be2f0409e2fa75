-- Batch operations live in the shard that owns (namespace_id, job_id): every write checks the shard's
-- range_id in the same transaction, so a batch has exactly one writer, the shard's owner.
CREATE TABLE batch_operations (
    shard_id            INTEGER NOT NULL,
    namespace_id        TEXT    NOT NULL,
    job_id              TEXT    NOT NULL,
    -- The batcher's state (request, page token, page in progress, counts), serialized by it; opaque here.
    state               BLOB    NOT NULL,
    -- Optimistic concurrency: a write names the version it read.
    version             INTEGER NOT NULL,
    PRIMARY KEY (shard_id, namespace_id, job_id)
);
