-- One row per Nexus endpoint.
CREATE TABLE nexus_endpoints (
    id                  TEXT    NOT NULL PRIMARY KEY,
    -- temporal.api.nexus.v1.Endpoint, serialized (a worker target names its namespace by id); opaque here.
    data                BLOB    NOT NULL,
    version             INTEGER NOT NULL
);
-- The registry's version (one row): every create, update and delete names the version it read.
CREATE TABLE nexus_endpoints_table (
    partition           INTEGER NOT NULL PRIMARY KEY CHECK (partition = 0),
    version             INTEGER NOT NULL
);
