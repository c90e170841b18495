-- Retry, fork and retention of finished runs (see the Postgres twin of this migration).

ALTER TABLE runs ADD COLUMN first_attempt INTEGER NOT NULL DEFAULT 1;

ALTER TABLE runs ADD COLUMN forked_from TEXT;

CREATE TABLE run_attempts (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    finished_at TEXT,
    retried_at TEXT NOT NULL,
    PRIMARY KEY (run_id, attempt)
);

CREATE INDEX runs_finished ON runs (finished_at)
    WHERE status IN ('succeeded', 'failed', 'canceled');
