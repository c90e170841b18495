-- Concurrency limits: @workflow(name, concurrency=N) caps the runs of a workflow that are
-- 'running' at once across all workers; with concurrency_key=FIELD the cap is N per value of
-- that top-level field of the input (its text, input ->> FIELD).
--
-- A running run holds its slot until it leaves 'running' (finished, sleeping, released,
-- canceled). A dead holder's run stays 'running' until a claim takes it over once its lease
-- expired: the takeover inherits the slot, so a slot is never handed to another run while the
-- old holder may still be running, even one whose heartbeat later revives its lease.

-- The key a claim computed for the run. A group's running runs are counted through the index
-- of running runs, which replaces 0001's (one index to maintain per lease, as before): by
-- workflow, lease expiry (the claim's takeovers) and key (the counts, from the index alone).
ALTER TABLE runs ADD COLUMN concurrency_key text;

DROP INDEX runs_leased;
CREATE INDEX runs_leased ON runs (workflow, lease_expires_at, concurrency_key)
    WHERE status = 'running';

-- What each worker declares: {"<workflow>": {"concurrency": N, "key": FIELD or null}}.
ALTER TABLE workers ADD COLUMN limits jsonb NOT NULL DEFAULT '{}';

-- The limits in force: for each workflow, the strictest declaration of a worker that
-- heartbeated since live_since, or of the claimer itself (whatever its heartbeat says): the
-- smallest N, and at equal N a workflow-wide cap before a keyed one, then the smallest field.
-- A worker that declares no limit does not lift another worker's.
-- plpgsql, like the functions below: the claim calls them, and their plans are made once per
-- connection instead of being planned again inside every claim (a claim is planned per call).
CREATE FUNCTION stepwise_limits(claimer text, live_since timestamptz)
RETURNS TABLE (workflow text, concurrency integer, key_field text)
LANGUAGE plpgsql STABLE ROWS 1 AS $$
BEGIN
    RETURN QUERY
    SELECT DISTINCT ON (l.key) l.key, (l.value ->> 'concurrency')::integer, l.value ->> 'key'
    FROM workers AS w
    CROSS JOIN LATERAL jsonb_each(w.limits) AS l
    WHERE w.id = claimer OR w.heartbeat_at >= live_since
    ORDER BY l.key, (l.value ->> 'concurrency')::integer, l.value ->> 'key' NULLS FIRST;
END;
$$;

-- Whether the group of a run with this input already has its N runs running, as the calling
-- statement sees it: the claim's cheap first pass, which stepwise_admit then makes exact.
CREATE FUNCTION stepwise_group_full(wf text, field text, cap integer, run_input jsonb)
RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN cap <= (
        SELECT count(*) FROM (
            SELECT FROM runs AS x
            WHERE x.workflow = wf AND x.status = 'running'
              AND (field IS NULL OR x.concurrency_key IS NOT DISTINCT FROM run_input ->> field)
            LIMIT cap
        ) AS running
    );
END;
$$;

-- Of the candidate runs a claim locked, those it may take, with the key of each: runs of
-- workflows without a limit, every takeover of an expired lease (it already holds its slot),
-- and per (workflow, key) group as many due runs as the group has free slots, oldest first.
--
-- Each group is counted under its own transaction-scoped advisory lock, taken in lock-key
-- order (no deadlock between claims; claims of other groups never wait), and counted by a
-- statement of its own: a VOLATILE plpgsql function takes a fresh snapshot per statement, so
-- the count sees every claim of the group that held the lock before and has committed.
-- ROWS 1: the claim's estimate of the runs it admits stays that of the runs it picked, so the
-- planner looks each one up by id; the default (1000) made it scan the whole runs table.
CREATE FUNCTION stepwise_admit(candidates uuid[], claimer text, live_since timestamptz)
RETURNS TABLE (id uuid, concurrency_key text)
LANGUAGE plpgsql VOLATILE ROWS 1 AS $$
DECLARE
    grp record;
    held integer;
BEGIN
    RETURN QUERY
    SELECT r.id, CASE WHEN l.key_field IS NOT NULL THEN r.input ->> l.key_field END
    FROM runs AS r
    LEFT JOIN stepwise_limits(claimer, live_since) AS l ON l.workflow = r.workflow
    WHERE r.id = ANY (candidates) AND (l.workflow IS NULL OR r.status = 'running');

    FOR grp IN
        SELECT g.workflow, g.key, g.key_field, g.concurrency,
            array_agg(g.id ORDER BY g.available_at, g.created_at) AS ids
        FROM (
            SELECT r.id, r.workflow, r.available_at, r.created_at, l.key_field, l.concurrency,
                CASE WHEN l.key_field IS NOT NULL THEN r.input ->> l.key_field END AS key
            FROM runs AS r
            JOIN stepwise_limits(claimer, live_since) AS l ON l.workflow = r.workflow
            WHERE r.id = ANY (candidates) AND r.status <> 'running'
        ) AS g
        GROUP BY g.workflow, g.key, g.key_field, g.concurrency
        ORDER BY hashtext(current_schema() || '.' || g.workflow), hashtext(coalesce(g.key, ''))
    LOOP
        PERFORM pg_advisory_xact_lock(
            hashtext(current_schema() || '.' || grp.workflow), hashtext(coalesce(grp.key, ''))
        );
        SELECT count(*) INTO held
        FROM runs AS x
        WHERE x.workflow = grp.workflow AND x.status = 'running'
          AND (grp.key_field IS NULL OR x.concurrency_key IS NOT DISTINCT FROM grp.key);
        RETURN QUERY
        SELECT c.id, grp.key
        FROM unnest(grp.ids) WITH ORDINALITY AS c (id, n)
        WHERE c.n <= grp.concurrency - held;
    END LOOP;
END;
$$;
