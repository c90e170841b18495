-- The initial schema: runs (the queue), steps (the memo log), workers (who serves what).
-- Timestamps are UTC ISO-8601 text with microseconds and a trailing Z
-- ('2025-01-31T12:00:00.000000Z'), written by Python; the fixed width makes text order time order.

CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    version TEXT,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'sleeping', 'succeeded', 'failed', 'canceled')),
    input TEXT NOT NULL,
    output TEXT,
    error TEXT,
    idempotency_key TEXT,
    attempt INTEGER NOT NULL DEFAULT 1,
    claims INTEGER NOT NULL DEFAULT 0,
    lease_token TEXT,
    lease_owner TEXT,
    lease_expires_at TEXT,
    deadline_at TEXT,
    available_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    updated_at TEXT NOT NULL,
    UNIQUE (workflow, idempotency_key)
);

-- The claim: pending or sleeping runs that are due; running runs whose lease expired. Partial,
-- so finished runs (the bulk of a long-lived file) cost the claim nothing.
CREATE INDEX runs_claimable ON runs (workflow, available_at)
    WHERE status IN ('pending', 'sleeping');
CREATE INDEX runs_leased ON runs (workflow, lease_expires_at) WHERE status = 'running';
-- Fenced writes and heartbeats look runs up by their lease token.
CREATE UNIQUE INDEX runs_lease_token ON runs (lease_token) WHERE lease_token IS NOT NULL;
-- Listing, newest first.
CREATE INDEX runs_created ON runs (created_at DESC);
CREATE INDEX runs_workflow_created ON runs (workflow, created_at DESC);
-- The deadline sweep.
CREATE INDEX runs_deadline ON runs (deadline_at)
    WHERE deadline_at IS NOT NULL AND status IN ('pending', 'running', 'sleeping');

-- seq is the rowid: a UNIQUE (run_id, key) on a rowid table is exactly how SQLite stores a
-- composite primary key, and seq keeps the order in which steps were first started.
CREATE TABLE steps (
    seq INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'sleeping', 'completed', 'failed')),
    output TEXT,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    started_at TEXT,
    finished_at TEXT,
    wake_at TEXT,
    UNIQUE (run_id, key)
);

-- workflows is a JSON array of names.
CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    hostname TEXT NOT NULL,
    workflows TEXT NOT NULL,
    concurrency INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL
);
