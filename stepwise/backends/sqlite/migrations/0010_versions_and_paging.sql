-- Versions side by side, and paging (see the Postgres twin of this migration). workers.versions
-- is JSON text: {"<workflow>": ["2.0", "1.0"]}, newest first.
ALTER TABLE workers ADD COLUMN versions TEXT NOT NULL DEFAULT '{}';

CREATE INDEX runs_page ON runs (created_at DESC, id DESC);
CREATE INDEX runs_workflow_page ON runs (workflow, created_at DESC, id DESC);
DROP INDEX runs_created;
DROP INDEX runs_workflow_created;
