-- Search attributes of a run as a JSON object {name: value} with one canonical form per type (Datetime as
-- epoch nanoseconds, KeywordList as an array), written by the store next to the serialized proto so that
-- list queries filter and sort with SQLite's JSON functions. NULL means "not indexed yet": rows written
-- before this version are indexed when the store opens.
ALTER TABLE visibility ADD COLUMN search_attributes_index TEXT;

CREATE INDEX visibility_unindexed ON visibility (namespace_id) WHERE search_attributes_index IS NULL;

-- Custom search attributes registered per namespace with the OperatorService.
CREATE TABLE search_attributes (
    namespace_id        TEXT    NOT NULL,
    name                TEXT    NOT NULL,
    -- temporal.api.enums.v1.IndexedValueType as an int.
    type                INTEGER NOT NULL,
    PRIMARY KEY (namespace_id, name)
) WITHOUT ROWID;
