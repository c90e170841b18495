-- Retry, fork and retention of finished runs.
--
-- first_attempt: the attempt a manual retry (client.retry) started the run again at, 1 until
-- then; a workflow's RetryPolicy counts its attempts from it, so a retried run gets a fresh
-- workflow-level budget while runs.attempt keeps counting.
-- forked_from: the run a fork (client.fork) copied its first completed steps from. Not a
-- foreign key: the original may be pruned before its fork.

ALTER TABLE runs
    ADD COLUMN first_attempt integer NOT NULL DEFAULT 1,
    ADD COLUMN forked_from uuid;

-- The attempts of a run that a manual retry closed: how each one ended (its status and error)
-- stays visible after the run is started again.
CREATE TABLE run_attempts (
    run_id uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    attempt integer NOT NULL,
    status text NOT NULL,
    error json,
    finished_at timestamptz,
    retried_at timestamptz NOT NULL,
    PRIMARY KEY (run_id, attempt)
);

-- Retention deletes finished runs oldest first, in small batches.
CREATE INDEX runs_finished ON runs (finished_at)
    WHERE status IN ('succeeded', 'failed', 'canceled');
