-- Schedules live in the shard that owns (namespace_id, schedule_id): every write checks the shard's
-- range_id in the same transaction, so a schedule has exactly one writer, the shard's owner.
CREATE TABLE schedules (
    shard_id            INTEGER NOT NULL,
    namespace_id        TEXT    NOT NULL,
    schedule_id         TEXT    NOT NULL,
    -- The scheduler's state (spec, policies, info, buffered starts...), serialized by it; opaque here.
    state               BLOB    NOT NULL,
    -- Optimistic concurrency: a write names the version it read.
    version             INTEGER NOT NULL,
    PRIMARY KEY (shard_id, namespace_id, schedule_id)
);
