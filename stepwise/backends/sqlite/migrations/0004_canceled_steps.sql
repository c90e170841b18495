-- A step can end 'canceled' (see the Postgres twin of this migration). SQLite cannot alter a
-- CHECK constraint, so the table is rebuilt with the same columns, order and rowids (seq keeps
-- the first-started order), as SQLite's documented ALTER TABLE procedure does. Nothing refers
-- to steps, so dropping the old table breaks no foreign key.

CREATE TABLE steps_new (
    seq INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('running', 'sleeping', 'completed', 'failed', 'canceled')),
    output TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    started_at TEXT,
    finished_at TEXT,
    wake_at TEXT,
    UNIQUE (run_id, key)
);

INSERT INTO steps_new (
    seq, run_id, key, status, output, error, attempts, started_at, finished_at, wake_at
)
SELECT seq, run_id, key, status, output, error, attempts, started_at, finished_at, wake_at
FROM steps;

DROP TABLE steps;

ALTER TABLE steps_new RENAME TO steps;
