-- A run's parent ('' for a top-level run) and the run at the root of its tree (itself when top-level).
ALTER TABLE visibility ADD COLUMN parent_workflow_id TEXT NOT NULL DEFAULT '';
ALTER TABLE visibility ADD COLUMN parent_run_id TEXT NOT NULL DEFAULT '';
ALTER TABLE visibility ADD COLUMN root_workflow_id TEXT NOT NULL DEFAULT '';
ALTER TABLE visibility ADD COLUMN root_run_id TEXT NOT NULL DEFAULT '';
ALTER TABLE visibility ADD COLUMN state_transition_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE visibility ADD COLUMN history_size_bytes INTEGER NOT NULL DEFAULT 0;
