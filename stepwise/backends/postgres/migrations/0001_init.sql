-- The initial schema: runs (the queue), steps (the memo log), workers (who serves what), and the
-- server-side functions that keep the hot path at one round trip per call.
--
-- Every name is unqualified: the backend sets search_path to its schema on each connection, so
-- one database can hold several independent stepwise schemas.
--
-- Payloads: runs.input is jsonb; outputs and errors are json, which validates the text but
-- stores it as written, so a replay reads back exactly the JSON the first execution produced.

CREATE TABLE runs (
    id uuid PRIMARY KEY,
    workflow text NOT NULL,
    version text,
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'sleeping', 'succeeded', 'failed', 'canceled')),
    input jsonb NOT NULL,
    output json,
    error json,
    idempotency_key text,
    attempt integer NOT NULL DEFAULT 1,
    claims integer NOT NULL DEFAULT 0,
    lease_token uuid,
    lease_owner text,
    lease_expires_at timestamptz,
    deadline_at timestamptz,
    available_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workflow, idempotency_key)
);

-- The claim: pending or sleeping runs that are due, in claim order, so a claim reads only the
-- runs it takes (plus those of workflows it does not serve) however long the backlog.
CREATE INDEX runs_claimable ON runs (available_at, created_at)
    WHERE status IN ('pending', 'sleeping');
-- The claim: running runs whose lease expired.
CREATE INDEX runs_leased ON runs (lease_expires_at) WHERE status = 'running';
-- Heartbeats look runs up by their lease token.
CREATE UNIQUE INDEX runs_lease_token ON runs (lease_token) WHERE lease_token IS NOT NULL;
-- Listing, newest first.
CREATE INDEX runs_created ON runs (created_at DESC);
CREATE INDEX runs_workflow_created ON runs (workflow, created_at DESC);
-- The deadline sweep.
CREATE INDEX runs_deadline ON runs (deadline_at)
    WHERE deadline_at IS NOT NULL AND status IN ('pending', 'running', 'sleeping');

-- seq keeps the order in which steps were first started (list_steps, replay).
CREATE TABLE steps (
    run_id uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    key text NOT NULL,
    seq bigint GENERATED ALWAYS AS IDENTITY,
    status text NOT NULL CHECK (status IN ('running', 'sleeping', 'completed', 'failed')),
    output json,
    error json,
    attempts integer NOT NULL DEFAULT 0,
    started_at timestamptz,
    finished_at timestamptz,
    wake_at timestamptz,
    PRIMARY KEY (run_id, key)
);

CREATE TABLE workers (
    id text PRIMARY KEY,
    hostname text NOT NULL,
    workflows text[] NOT NULL,
    concurrency integer NOT NULL,
    started_at timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL
);

-- The notification channels of this schema: '<schema>.work' (a run may be claimable) and
-- '<schema>.runs' (payload: the id of a run whose steps or status changed). Channel names are
-- identifiers (at most 63 bytes), hence the cut; the backend LISTENs to what this returns.
CREATE FUNCTION stepwise_channel(kind text) RETURNS text
LANGUAGE sql STABLE
RETURN left(current_schema(), 58) || '.' || kind;

-- One fenced write op, as the backend serialises it (JSON keys = field names). n is the op's
-- position in its batch; kind is one of step_started, step_finished, step_sleeping,
-- finish_run, suspend_run, release_run, retry_run.
CREATE TYPE write_op AS (
    n integer,
    kind text,
    token text,
    run_id uuid,
    key text,
    status text,
    output text,
    error text,
    attempts integer,
    started_at timestamptz,
    finished_at timestamptz,
    wake_at timestamptz,
    available_at timestamptz
);

-- Apply a batch of write ops in order, in the caller's one transaction; return the lease tokens
-- whose ops were refused.
--
-- Fencing: the runs the ops name are locked (FOR NO KEY UPDATE, in id order so two batches
-- never deadlock) before anything is checked, so no claim, cancel or other batch can change a
-- run between the check and the write. An op applies only if its run is 'running' under the
-- op's token. A token's ops stop applying at its first op that fails that check, and after the
-- op that ends its lease (finish, suspend, release, retry): its later ops find the lease gone.
--
-- Set-based: each kind of change is one statement over the whole batch. Ops on one step are
-- applied in "generations" (the 1st op of every step, then the 2nd, ...) because one INSERT
-- cannot touch a row twice; a batch almost always has one op per step, so one pass.
CREATE FUNCTION stepwise_write(batch jsonb) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    applied write_op[];
    rejected text[];
    generations integer;
    ends_leases boolean;
BEGIN
    WITH ops AS (
        SELECT o AS op, o.n, o.token, o.run_id, o.kind
        FROM jsonb_populate_recordset(NULL::write_op, batch) AS o
    ), held AS (
        SELECT r.id, r.lease_token::text AS token
        FROM runs AS r
        WHERE r.id IN (SELECT ops.run_id FROM ops) AND r.status = 'running'
        ORDER BY r.id
        FOR NO KEY UPDATE
    ), judged AS (
        SELECT ops.op, ops.n, ops.token,
            min(ops.n) FILTER (WHERE held.id IS NULL) OVER per_token AS first_unheld,
            min(ops.n) FILTER (
                WHERE ops.kind IN ('finish_run', 'suspend_run', 'release_run', 'retry_run')
            ) OVER per_token AS lease_end
        FROM ops
        LEFT JOIN held ON held.id = ops.run_id AND held.token = ops.token
        WINDOW per_token AS (PARTITION BY ops.token)
    ), verdicts AS (
        SELECT op, n, token,
            n < coalesce(first_unheld, 2147483647) AND n <= coalesce(lease_end, 2147483647) AS ok
        FROM judged
    )
    SELECT array_agg(op ORDER BY n) FILTER (WHERE ok), array_agg(DISTINCT token) FILTER (WHERE NOT ok)
    INTO applied, rejected
    FROM verdicts;

    IF applied IS NULL THEN
        RETURN coalesce(rejected, '{}');
    END IF;

    SELECT max(per_step.ops) INTO generations
    FROM (
        SELECT count(*) AS ops FROM unnest(applied) AS o
        WHERE o.kind IN ('step_started', 'step_finished', 'step_sleeping')
        GROUP BY o.run_id, o.key
    ) AS per_step;

    FOR step_pass IN 1..coalesce(generations, 0) LOOP
        -- A completed step is final; a restarted one keeps its first started_at. The kind is
        -- read back from the row's status: running = started, sleeping = sleeping, else finished.
        INSERT INTO steps AS s (
            run_id, key, status, output, error, attempts, started_at, finished_at, wake_at
        )
        SELECT o.run_id, o.key,
            CASE o.kind
                WHEN 'step_started' THEN 'running'
                WHEN 'step_sleeping' THEN 'sleeping'
                ELSE o.status
            END,
            o.output::json, o.error::json, coalesce(o.attempts, 1),
            o.started_at, o.finished_at, o.wake_at
        FROM (
            SELECT o.*, row_number() OVER (PARTITION BY o.run_id, o.key ORDER BY o.n) AS generation
            FROM unnest(applied) AS o
            WHERE o.kind IN ('step_started', 'step_finished', 'step_sleeping')
        ) AS o
        WHERE o.generation = step_pass
        ORDER BY o.n
        ON CONFLICT (run_id, key) DO UPDATE
        SET status = excluded.status,
            attempts = CASE WHEN excluded.status = 'sleeping' THEN s.attempts
                ELSE excluded.attempts END,
            started_at = coalesce(s.started_at, excluded.started_at),
            output = CASE WHEN excluded.status IN ('completed', 'failed') THEN excluded.output
                ELSE s.output END,
            error = CASE WHEN excluded.status IN ('completed', 'failed') THEN excluded.error
                ELSE s.error END,
            finished_at = CASE WHEN excluded.status IN ('completed', 'failed')
                THEN excluded.finished_at ELSE s.finished_at END,
            wake_at = CASE WHEN excluded.status = 'sleeping' THEN excluded.wake_at
                ELSE s.wake_at END
        WHERE s.status <> 'completed';
    END LOOP;

    -- At most one lease-ending op per run applies (the token's ops stop after it).
    UPDATE runs AS r
    SET status = CASE o.kind
            WHEN 'finish_run' THEN o.status
            WHEN 'suspend_run' THEN 'sleeping'
            ELSE 'pending'
        END,
        output = CASE WHEN o.kind = 'finish_run' THEN o.output::json ELSE r.output END,
        error = CASE WHEN o.kind IN ('finish_run', 'retry_run') THEN o.error::json
            ELSE r.error END,
        finished_at = CASE WHEN o.kind = 'finish_run' THEN now() ELSE r.finished_at END,
        available_at = CASE o.kind
            WHEN 'finish_run' THEN r.available_at
            WHEN 'release_run' THEN now()
            ELSE o.available_at
        END,
        attempt = r.attempt + CASE WHEN o.kind = 'retry_run' THEN 1 ELSE 0 END,
        lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
    FROM unnest(applied) AS o
    WHERE o.kind IN ('finish_run', 'suspend_run', 'release_run', 'retry_run') AND r.id = o.run_id;
    ends_leases := FOUND;

    IF ends_leases THEN
        -- A workflow-level retry runs its failed steps again; completed ones stay memoized.
        DELETE FROM steps AS s
        USING unnest(applied) AS o
        WHERE o.kind = 'retry_run' AND s.run_id = o.run_id AND s.status = 'failed';

        IF EXISTS (
            SELECT FROM unnest(applied) AS o
            WHERE o.kind IN ('suspend_run', 'release_run', 'retry_run')
        ) THEN
            PERFORM pg_notify(stepwise_channel('work'), '');
        END IF;
    END IF;

    -- Watchers re-read these runs. One notification carries up to 150 comma-separated ids
    -- (payloads must stay under 8000 bytes): every listening process handles one message per
    -- batch instead of one per run.
    PERFORM pg_notify(stepwise_channel('runs'), chunk.ids)
    FROM (
        SELECT string_agg(numbered.id, ',') AS ids
        FROM (
            SELECT changed.id, (row_number() OVER () - 1) / 150 AS part
            FROM (SELECT DISTINCT o.run_id::text AS id FROM unnest(applied) AS o) AS changed
        ) AS numbered
        GROUP BY numbered.part
    ) AS chunk;

    RETURN coalesce(rejected, '{}');
END;
$$;
