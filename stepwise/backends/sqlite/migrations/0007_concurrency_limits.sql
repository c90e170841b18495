-- Concurrency limits (see the Postgres twin of this migration): the key a claim computed for
-- the run, the index of running runs that now also counts a group's runs (it replaces 0001's),
-- and the limits each worker declares (JSON text: {"<workflow>": {"concurrency": N, "key":
-- FIELD or null}}). SQLite's claim holds the write lock while it counts: it needs no lock of
-- its own.

ALTER TABLE runs ADD COLUMN concurrency_key TEXT;

DROP INDEX runs_leased;
CREATE INDEX runs_leased ON runs (workflow, lease_expires_at, concurrency_key)
    WHERE status = 'running';

ALTER TABLE workers ADD COLUMN limits TEXT NOT NULL DEFAULT '{}';
