-- Versions side by side, and paging.
--
-- What each worker serves of each workflow, by version, newest first (core.versions):
-- {"<workflow>": ["2.0", "1.0"]}; a workflow served only unversioned is not listed. A run
-- pinned to a version is claimed only by a worker that lists it; an unpinned run (version
-- null: started when no live worker served a version of it) is pinned by its first claim to
-- the claimer's newest.
ALTER TABLE workers ADD COLUMN versions jsonb NOT NULL DEFAULT '{}';

-- client.list pages by keyset on (created_at, id), newest first: the order and the cursor
-- come from these indexes alone, so a page costs its own rows whatever its depth.
CREATE INDEX runs_page ON runs (created_at DESC, id DESC);
CREATE INDEX runs_workflow_page ON runs (workflow, created_at DESC, id DESC);
DROP INDEX runs_created;
DROP INDEX runs_workflow_created;

-- client.steps pages by seq within a run.
CREATE INDEX steps_page ON steps (run_id, seq);
