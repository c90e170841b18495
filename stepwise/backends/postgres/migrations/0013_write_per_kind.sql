-- stepwise_write split by kind of write. 0011 had to copy the whole function to add log lines;
-- now stepwise_write only fences the batch (stepwise_fence), hands the ops it applies to one
-- function per kind of write, in a fixed order, and tells watchers which runs changed. A later
-- migration that changes a kind replaces only that kind's function; one that adds a kind adds
-- its function and one call here (and, if it ends a lease, a name in stepwise_ends_lease).
--
-- Behaviour is that of 0011's stepwise_write, statement for statement: the same locks taken
-- in the same order, the same statements in the same order, in the caller's one transaction.
-- Each kind's function picks its own ops from the applied ones (in batch order) and does
-- nothing when there are none.

-- Whether an op of this kind ends its run's lease: its token's later ops are refused.
CREATE FUNCTION stepwise_ends_lease(kind text) RETURNS boolean
LANGUAGE sql IMMUTABLE
RETURN kind IN ('finish_run', 'suspend_run', 'release_run', 'retry_run');

-- The fencing of migration 0001 (see its stepwise_write): lock the batch's runs, in id order,
-- and split the ops into those that apply (in batch order) and the tokens refused.
CREATE FUNCTION stepwise_fence(batch jsonb, OUT applied write_op[], OUT rejected text[])
LANGUAGE plpgsql AS $$
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
            min(ops.n) FILTER (WHERE stepwise_ends_lease(ops.kind)) OVER per_token AS lease_end
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
END;
$$;

-- step_started, step_finished, step_sleeping: one upsert per generation (the 1st op of every
-- step, then the 2nd, ...), because one INSERT cannot touch a row twice and a step's ops must
-- apply in batch order whatever their kinds. A completed step is final; a restarted one keeps
-- its first started_at. The kind is read back from the row's status: running = started,
-- sleeping = sleeping, else finished.
CREATE FUNCTION stepwise_write_steps(applied write_op[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    generations integer;
BEGIN
    SELECT max(per_step.ops) INTO generations
    FROM (
        SELECT count(*) AS ops FROM unnest(applied) AS o
        WHERE o.kind IN ('step_started', 'step_finished', 'step_sleeping')
        GROUP BY o.run_id, o.key
    ) AS per_step;

    FOR step_pass IN 1..coalesce(generations, 0) LOOP
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
END;
$$;

-- log_line (migration 0011): numbered per run after those stored. A body line (no step) that a
-- replay repeats is known by (attempt, ordinal) and stored once. A run keeps at most
-- max_records lines; past that, one marker row counts the lines dropped, and moves to the end
-- so a reader that follows the run (after=seq) sees its count grow.
CREATE FUNCTION stepwise_write_logs(applied write_op[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
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
END;
$$;

-- finish_run, suspend_run, release_run, retry_run: the run's lease ends. At most one such op
-- per run applies (the token's ops stop after it). A workflow-level retry runs its failed
-- steps again; completed ones stay memoized. A run given back wakes the workers.
CREATE FUNCTION stepwise_write_lease_ends(applied write_op[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
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
    WHERE stepwise_ends_lease(o.kind) AND r.id = o.run_id;

    IF FOUND THEN
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
END;
$$;

-- Apply a batch of write ops in order, in the caller's one transaction; return the lease tokens
-- whose ops were refused. Fencing, then each kind of write over the whole batch (steps before
-- the lease ends, so a retry erases the failed steps this batch stored), then the watchers.
CREATE OR REPLACE FUNCTION stepwise_write(batch jsonb) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    applied write_op[];
    rejected text[];
BEGIN
    SELECT * INTO applied, rejected FROM stepwise_fence(batch);
    IF applied IS NULL THEN
        RETURN coalesce(rejected, '{}');
    END IF;

    PERFORM stepwise_write_steps(applied);
    PERFORM stepwise_write_logs(applied);
    PERFORM stepwise_write_lease_ends(applied);

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
