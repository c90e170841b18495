-- Logs per run (see the Postgres twin of this migration): a run's log lines, in seq order; a
-- body line (step null) is identified across replays by (attempt, ordinal); a row with dropped
-- set is the marker that counts the lines dropped past the run's cap.

CREATE TABLE run_logs (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    level INTEGER NOT NULL,
    logger TEXT NOT NULL,
    step TEXT,
    attempt INTEGER,
    ordinal INTEGER,
    message TEXT NOT NULL,
    dropped INTEGER,
    PRIMARY KEY (run_id, seq)
);

CREATE UNIQUE INDEX run_logs_marker ON run_logs (run_id) WHERE dropped IS NOT NULL;
