-- The cluster's task-token key (32 random bytes). NULL until a node records one: written once, by
-- whichever node starts first (UPDATE ... WHERE task_token_secret IS NULL), then read by every node.
ALTER TABLE cluster_metadata ADD COLUMN task_token_secret BLOB;
