-- Logs per run: what a workflow logs (ctx.log, and plain logging inside its steps), stored
-- with the run in the batches that carry its steps (stepwise_write, redefined below with one
-- more section; the rest is as in migration 0001).
--
-- seq orders a run's lines (the cursor of client.logs). step is null for a line of the
-- workflow body, whose (attempt, ordinal) — the workflow-level attempt and its position among
-- the body's lines — identifies it across replays. attempt is the step's attempt for a step's
-- line. A row with dropped set is the marker: how many lines past the run's cap were dropped.

CREATE TABLE run_logs (
    run_id uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq bigint NOT NULL,
    at timestamptz NOT NULL,
    level integer NOT NULL,
    logger text NOT NULL,
    step text,
    attempt integer,
    ordinal integer,
    message text NOT NULL,
    dropped integer,
    PRIMARY KEY (run_id, seq)
);

CREATE UNIQUE INDEX run_logs_marker ON run_logs (run_id) WHERE dropped IS NOT NULL;

-- A log_line op: key is the step (null in the body), the rest as the columns above, and
-- max_records the cap of the worker that wrote it.
ALTER TYPE write_op
    ADD ATTRIBUTE attempt integer,
    ADD ATTRIBUTE ordinal integer,
    ADD ATTRIBUTE level integer,
    ADD ATTRIBUTE logger text,
    ADD ATTRIBUTE message text,
    ADD ATTRIBUTE at timestamptz,
    ADD ATTRIBUTE max_records integer;

CREATE OR REPLACE FUNCTION stepwise_write(batch jsonb) RETURNS text[]
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

    -- Log lines (this migration): numbered per run after those stored. A body line (no step)
    -- that a replay repeats is known by (attempt, ordinal) and stored once. A run keeps at most
    -- max_records lines; past that, one marker row counts the lines dropped, and moves to the
    -- end so a reader that follows the run (after=seq) sees its count grow.
    IF EXISTS (SELECT FROM unnest(applied) AS o WHERE o.kind = 'log_line') THEN
        WITH lines AS (
            SELECT o.*, row_number() OVER (PARTITION BY o.run_id ORDER BY o.n) AS k
            FROM unnest(applied) AS o
            WHERE o.kind = 'log_line' AND NOT EXISTS (
                SELECT FROM run_logs AS l
                WHERE l.run_id = o.run_id AND l.step IS NULL AND o.key IS NULL
                  AND l.attempt = o.attempt AND l.ordinal = o.ordinal
            )
        ), stored AS (
            SELECT l.run_id, count(*) FILTER (WHERE l.dropped IS NULL) AS kept, max(l.seq) AS last
            FROM run_logs AS l
            WHERE l.run_id IN (SELECT lines.run_id FROM lines)
            GROUP BY l.run_id
        ), numbered AS (
            SELECT lines.*, coalesce(stored.kept, 0) + lines.k AS nth,
                coalesce(stored.last, 0) + lines.k AS seq
            FROM lines
            LEFT JOIN stored ON stored.run_id = lines.run_id
        ), kept AS (
            INSERT INTO run_logs (run_id, seq, at, level, logger, step, attempt, ordinal, message)
            SELECT numbered.run_id, numbered.seq, numbered.at, numbered.level, numbered.logger,
                numbered.key, numbered.attempt, numbered.ordinal, numbered.message
            FROM numbered
            WHERE numbered.nth <= numbered.max_records
        )
        INSERT INTO run_logs AS l (run_id, seq, at, level, logger, message, dropped)
        SELECT numbered.run_id, max(numbered.seq) + 1, max(numbered.at), 30, 'stepwise', '',
            count(*)
        FROM numbered
        WHERE numbered.nth > numbered.max_records
        GROUP BY numbered.run_id
        ON CONFLICT (run_id) WHERE dropped IS NOT NULL DO UPDATE
        SET seq = excluded.seq, at = excluded.at, dropped = l.dropped + excluded.dropped;
    END IF;

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
