-- Concurrency limits (see the Postgres twin of this migration): the key a claim computed for
-- the run, the index that counts a group's running runs, and the limits each worker declares
-- (JSON text: {"<workflow>": {"concurrency": N, "key": FIELD or null}}). SQLite's claim holds
-- the write lock while it counts, so it needs no lock of its own.

ALTER TABLE runs ADD COLUMN concurrency_key TEXT;

CREATE INDEX runs_running_groups ON runs (workflow, concurrency_key) WHERE status = 'running';

ALTER TABLE workers ADD COLUMN limits TEXT NOT NULL DEFAULT '{}';
