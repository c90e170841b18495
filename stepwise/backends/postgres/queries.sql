-- Named queries of the Postgres backend (loaded by stepwise.backends.sqlfiles.load_queries).
-- Parameters are positional ($1…). Table names are unqualified: every connection's search_path
-- is the backend's schema.
--
-- Round trips per Backend call (asyncpg prepares each statement once per connection, then one
-- Bind/Execute/Sync per call; the pool releases connections without a reset query):
--   write           1  SELECT stepwise_write(batch): fencing + all ops + NOTIFY, one transaction
--   claim_runs      1  lock, lease and return the runs with their steps, one statement
--   create_run      1  insert or return the run holding the idempotency key (+1 on a rare race)
--   create_runs     1  the same for a whole batch (+1 when a key repeats in it or races)
--   cancel_run      5  BEGIN, lock_descendants, cancel_run, cancel_steps, COMMIT (+1 when a
--                      concurrent write finished the run meanwhile)
--   expire_runs     4  BEGIN, expire_runs, cancel_steps, COMMIT
--   heartbeat       1  worker heartbeat and lease extension, one statement
--   get_run, list_runs, list_steps, list_logs, last_logs, register/unregister_worker,
--   serving_workers 1 each
--   wait_for_work, watch: 0 (notifications arrive on the listener connection)
--   open            7 + 2 per pending migration, then the listener's connect and LISTENs
--                   (+1 for a command that must not create the schema: schema_exists)

-- name: lock_migrations --
-- Held until the migrating transaction ends: backends starting together migrate one at a time.
SELECT pg_advisory_xact_lock(hashtext('stepwise.migrations'), hashtext($1));

-- name: schema_exists --
-- Whether the schema (the search_path) holds stepwise's tables: commands that must not create
-- them refuse a database without them.
SELECT to_regclass('stepwise_migrations') IS NOT NULL;

-- name: create_schema --
-- {schema} is the validated, quoted schema identifier: the only SQL text made in Python.
CREATE SCHEMA IF NOT EXISTS {schema};

-- name: create_migrations_table --
CREATE TABLE IF NOT EXISTS stepwise_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: applied_migrations --
SELECT version FROM stepwise_migrations;

-- name: record_migration --
INSERT INTO stepwise_migrations (version, name) VALUES ($1, $2);

-- name: channels --
-- The names this schema NOTIFYs on; the listener LISTENs to them.
SELECT stepwise_channel('work') AS work, stepwise_channel('runs') AS runs;

-- name: ping --
-- The listener's liveness probe while it waits for notifications.
SELECT 1;

-- name: create_run --
-- Inserts the run, or (its idempotency key already used for the workflow) returns the run that
-- holds the key with created = false. A key taken by a transaction that committed after this
-- statement's snapshot yields no row at all: the caller asks again.
WITH inserted AS (
    INSERT INTO runs (
        id, workflow, version, input, idempotency_key, deadline_at, available_at, scheduled_at,
        traceparent
    )
    VALUES ($1, $2, $3, $4, $5, $6, coalesce($7, now()), $8, $9)
    ON CONFLICT (workflow, idempotency_key) DO NOTHING
    RETURNING *
)
SELECT true AS created, inserted.*
FROM inserted
CROSS JOIN LATERAL (SELECT pg_notify(stepwise_channel('work'), '')) AS wake
UNION ALL
SELECT false AS created, runs.*
FROM runs
WHERE workflow = $2 AND idempotency_key = $5 AND NOT EXISTS (SELECT FROM inserted);

-- name: create_runs --
-- create_run for a batch, in one statement: $1..$9 are arrays, one element per run. Each row
-- says which element (ord, from 1) it answers. A key repeated in the batch inserts its first
-- element only; like a key taken by a concurrent commit, the others get no row here and the
-- caller asks again for them. Wakes workers once, however many runs it inserts.
WITH batch AS (
    SELECT *
    FROM unnest(
        $1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
        $7::timestamptz[], $8::timestamptz[], $9::text[]
    ) WITH ORDINALITY AS b (
        id, workflow, version, input, idempotency_key, deadline_at, available_at, scheduled_at,
        traceparent, ord
    )
),
inserted AS (
    INSERT INTO runs (
        id, workflow, version, input, idempotency_key, deadline_at, available_at, scheduled_at,
        traceparent
    )
    SELECT id, workflow, version, input::jsonb, idempotency_key, deadline_at,
        coalesce(available_at, now()), scheduled_at, traceparent
    FROM batch
    ORDER BY ord
    ON CONFLICT (workflow, idempotency_key) DO NOTHING
    RETURNING *
),
wake AS (
    SELECT pg_notify(stepwise_channel('work'), '') FROM (SELECT FROM inserted LIMIT 1) AS any_run
)
SELECT true AS created, batch.ord, inserted.*
FROM inserted
JOIN batch USING (id)
LEFT JOIN wake ON true
UNION ALL
SELECT false AS created, batch.ord, runs.*
FROM batch
JOIN runs USING (workflow, idempotency_key)
WHERE NOT EXISTS (SELECT FROM inserted WHERE inserted.id = batch.id);

-- name: get_run --
SELECT * FROM runs WHERE id = $1;

-- name: list_runs --
-- Newest first; $2 is a (possibly empty) array of statuses. A page starts after the position
-- ($6, $7) of the previous page's last run (null: the first page): a keyset on (created_at, id)
-- (migration 0010's indexes), so runs created meanwhile never shift a page.
SELECT *
FROM runs
WHERE ($1::text IS NULL OR workflow = $1)
  AND (cardinality($2::text[]) = 0 OR status = ANY ($2::text[]))
  AND ($4::timestamptz IS NULL OR created_at >= $4)
  AND ($5::timestamptz IS NULL OR created_at < $5)
  AND ($6::timestamptz IS NULL OR (created_at, id) < ($6::timestamptz, $7::uuid))
  AND ($8::uuid IS NULL OR parent_id = $8)
ORDER BY created_at DESC, id DESC
LIMIT $3;

-- name: count_runs --
-- The runs list_runs ($1, $2, $3, $4 as its $1, $2, $4, $5) selects, all pages.
SELECT count(*)
FROM runs
WHERE ($1::text IS NULL OR workflow = $1)
  AND (cardinality($2::text[]) = 0 OR status = ANY ($2::text[]))
  AND ($3::timestamptz IS NULL OR created_at >= $3)
  AND ($4::timestamptz IS NULL OR created_at < $4);

-- name: active_runs --
-- The metrics' gauges: runs not finished, per workflow. Two scans, one per partial index of the
-- claim (runs_claimable, runs_leased: index only), so the finished runs, the bulk of the table,
-- are never read (one IN over the three statuses matches neither index and scans the table).
-- One row for each workflow of $1 or registered by a worker, then one (NULL) for all others.
WITH active AS (
    SELECT workflow,
        count(*) FILTER (WHERE status = 'pending') AS pending,
        0 AS running,
        count(*) FILTER (WHERE status = 'sleeping') AS sleeping,
        count(*) FILTER (WHERE available_at <= now()) AS due
    FROM runs
    WHERE status IN ('pending', 'sleeping')
    GROUP BY workflow
    UNION ALL
    SELECT workflow, 0, count(*), 0, 0
    FROM runs
    WHERE status = 'running'
    GROUP BY workflow
),
known AS (
    SELECT unnest($1::text[]) AS workflow
    UNION
    SELECT unnest(workflows) FROM workers
)
SELECT k.workflow, coalesce(sum(a.pending), 0) AS pending,
    coalesce(sum(a.running), 0) AS running, coalesce(sum(a.sleeping), 0) AS sleeping,
    coalesce(sum(a.due), 0) AS due
FROM known AS k
LEFT JOIN active AS a ON a.workflow = k.workflow
GROUP BY k.workflow
UNION ALL
SELECT NULL, coalesce(sum(pending), 0), coalesce(sum(running), 0), coalesce(sum(sleeping), 0),
    coalesce(sum(due), 0)
FROM active
WHERE workflow NOT IN (SELECT workflow FROM known);

-- name: run_ids_between --
-- The ids that start with a prefix: $1 and $2 are the prefix padded with 0s and fs.
SELECT id::text AS id
FROM runs
WHERE id BETWEEN $1::uuid AND $2::uuid
ORDER BY id
LIMIT $3;

-- name: list_steps --
-- First-started order; a page starts after seq $2 (null: the first), at most $3 (null: all).
SELECT * FROM steps WHERE run_id = $1 AND ($2::bigint IS NULL OR seq > $2) ORDER BY seq LIMIT $3;

-- name: list_logs --
-- A run's log lines after seq $2, at most $3.
SELECT * FROM run_logs WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3;

-- name: last_logs --
-- A run's last $2 log lines, oldest first.
SELECT * FROM (
    SELECT * FROM run_logs WHERE run_id = $1 ORDER BY seq DESC LIMIT $2
) AS last ORDER BY seq;

-- name: lock_descendants --
-- Taken first by a cancel, in its transaction: the unfinished descendants of run $1 (its child
-- runs, theirs…), deepest first, locked before the run itself. A child's end locks the child,
-- then its parent (migration 0009's trigger); a cancel that locked the parent first and then,
-- through its cascade, the children could wait for such an end while it waits for the parent:
-- a deadlock. In this order (child before parent, like the trigger) none can form.
WITH RECURSIVE tree (id, depth) AS (
    SELECT id, 1 FROM runs WHERE parent_id = $1 AND status IN ('pending', 'running', 'sleeping')
    UNION ALL
    SELECT r.id, tree.depth + 1
    FROM runs AS r
    JOIN tree ON r.parent_id = tree.id
    WHERE r.status IN ('pending', 'running', 'sleeping')
)
SELECT r.id
FROM runs AS r
JOIN tree ON tree.id = r.id
ORDER BY tree.depth DESC, r.id
FOR NO KEY UPDATE OF r;

-- name: cancel_run --
-- changed = false and an unfinished status means a concurrent write finished the run after
-- this statement's snapshot: the caller reads again. lease_expires_at stays: until then the
-- holder may still be starting steps, so a retry makes the run available only after it.
WITH canceled AS (
    UPDATE runs
    SET status = 'canceled', finished_at = now(), updated_at = now(),
        lease_token = NULL, lease_owner = NULL
    WHERE id = $1 AND status IN ('pending', 'running', 'sleeping')
    RETURNING *
)
SELECT true AS changed, canceled.*
FROM canceled
CROSS JOIN LATERAL (SELECT pg_notify(stepwise_channel('runs'), canceled.id::text)) AS wake
UNION ALL
SELECT false AS changed, runs.*
FROM runs
WHERE id = $1 AND NOT EXISTS (SELECT FROM canceled);

-- name: expire_runs --
-- The error document has the shape every stored error has: {"type", "message"}. Runs locked
-- by a write in flight are left for the next sweep. A run waiting for a workflow retry keeps
-- the error of its last attempt: that is why it failed, the deadline only stopped the retry.
-- lease_expires_at stays, as in cancel_run.
WITH due AS (
    SELECT id
    FROM runs
    WHERE deadline_at <= now() AND status IN ('pending', 'running', 'sleeping')
    ORDER BY id
    FOR NO KEY UPDATE SKIP LOCKED
), expired AS (
    UPDATE runs AS r
    SET status = 'failed', finished_at = now(), updated_at = now(),
        error = coalesce(r.error, json_build_object(
            'type', 'DeadlineExceeded',
            'message', 'the run passed its deadline ('
                || to_char(r.deadline_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
                || ')'
        )),
        lease_token = NULL, lease_owner = NULL
    FROM due
    WHERE r.id = due.id
    RETURNING r.id
)
SELECT expired.id
FROM expired
CROSS JOIN LATERAL (SELECT pg_notify(stepwise_channel('runs'), expired.id::text)) AS wake;

-- name: cancel_steps --
-- The steps in flight (running or sleeping) of runs that ended without them: canceled, or
-- failed by their deadline. Run in the transaction that ended the runs, after it locked them:
-- its fresh snapshot sees every step write the fencing accepted before.
UPDATE steps
SET status = 'canceled', finished_at = now()
WHERE run_id = ANY ($1::uuid[]) AND status IN ('running', 'sleeping');

-- name: lock_run --
-- Taken first by a retry, in its transaction: the statements after it see every write the
-- fencing accepted before (each takes a fresh snapshot), and no claim, cancel or prune can
-- change the run meanwhile.
SELECT status FROM runs WHERE id = $1 FOR NO KEY UPDATE;

-- name: record_attempt --
-- The attempt a retry closes, as it ended.
INSERT INTO run_attempts (run_id, attempt, status, error, finished_at, retried_at)
SELECT id, attempt, status, error, finished_at, now()
FROM runs
WHERE id = $1;

-- name: erase_unfinished_steps --
-- What a retry runs again: failed steps (with a fresh attempt budget), and steps canceled in
-- flight by a cancel or a deadline.
DELETE FROM steps WHERE run_id = $1 AND status <> 'completed';

-- name: resume_run --
-- $2: the new deadline; null keeps a deadline still ahead and drops one passed. Available once
-- the lease of the run's last holder has expired (cancel_run keeps it): by then that holder
-- starts no more steps, so it never runs one beside the next holder.
WITH resumed AS (
    UPDATE runs
    SET status = 'pending', attempt = attempt + 1, first_attempt = attempt + 1,
        output = NULL, error = NULL, finished_at = NULL, recoveries = 0,
        deadline_at = CASE WHEN $2::timestamptz IS NOT NULL THEN $2::timestamptz
            WHEN deadline_at > now() THEN deadline_at END,
        available_at = greatest(now(), lease_expires_at), lease_expires_at = NULL,
        updated_at = now()
    WHERE id = $1
    RETURNING *
)
SELECT resumed.*
FROM resumed
CROSS JOIN LATERAL (
    SELECT pg_notify(stepwise_channel('work'), ''), pg_notify(stepwise_channel('runs'), id::text)
) AS wake;

-- name: list_attempts --
SELECT * FROM run_attempts WHERE run_id = $1 ORDER BY attempt;

-- name: fork_run --
-- The new run $1 of the same workflow, version and input as $2; fork_steps then copies its
-- steps, in the same transaction.
WITH forked AS (
    INSERT INTO runs (id, workflow, version, input, forked_from)
    SELECT $1, workflow, version, input, id FROM runs WHERE id = $2
    RETURNING *
)
SELECT forked.*
FROM forked
CROSS JOIN LATERAL (SELECT pg_notify(stepwise_channel('work'), '')) AS wake;

-- name: fork_steps --
-- $2's steps completed before step $3, copied to $1 in first-started order, so the fork's seq
-- keeps the original's order.
INSERT INTO steps (run_id, key, status, output, error, attempts, started_at, finished_at, wake_at)
SELECT $1, key, status, output, error, attempts, started_at, finished_at, wake_at
FROM steps
WHERE run_id = $2 AND status = 'completed'
  AND seq < (SELECT seq FROM steps WHERE run_id = $2 AND key = $3)
ORDER BY seq;

-- name: prune_runs --
-- Up to $2 finished runs that finished over $1 seconds ago, oldest first; their steps and
-- attempts go with them (ON DELETE CASCADE). SKIP LOCKED: a run someone holds (a retry) is
-- left for the next batch; claims and writes lock only unfinished runs, so they never wait.
WITH doomed AS (
    SELECT id
    FROM runs
    WHERE status IN ('succeeded', 'failed', 'canceled')
      AND finished_at < now() - make_interval(secs => $1)
    ORDER BY finished_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
DELETE FROM runs USING doomed WHERE runs.id = doomed.id;

-- name: register_worker --
-- $5: the concurrency limits it declares, {"<workflow>": {"concurrency", "key"}} (migration 0007);
-- $6: the versions it serves, {"<workflow>": ["2.0", "1.0"]}, newest first (migration 0010).
INSERT INTO workers (
    id, hostname, workflows, concurrency, limits, versions, started_at, heartbeat_at
)
VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, now(), now())
ON CONFLICT (id) DO UPDATE
SET hostname = excluded.hostname, workflows = excluded.workflows,
    concurrency = excluded.concurrency, limits = excluded.limits, versions = excluded.versions,
    started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at;

-- name: unregister_worker --
DELETE FROM workers WHERE id = $1;

-- name: serving_workers --
-- $3: only the workers that serve this version of the workflow (null: any).
SELECT count(*)
FROM workers
WHERE heartbeat_at >= now() - make_interval(secs => $2) AND $1 = ANY (workflows)
  AND ($3::text IS NULL OR versions -> $1 @> to_jsonb($3::text));

-- name: served_versions --
SELECT DISTINCT v.version
FROM workers AS w
CROSS JOIN LATERAL jsonb_array_elements_text(coalesce(w.versions -> $1, '[]')) AS v (version)
WHERE w.heartbeat_at >= now() - make_interval(secs => $2);

-- name: concurrency_use --
-- The limit in force for run $1's workflow (worker limits outlive a heartbeat by $2 seconds),
-- the run's key under it and how many runs of its group are running; no row without a limit.
SELECT l.concurrency, l.key_field, g.key, (
    SELECT count(*)
    FROM runs AS x
    WHERE x.workflow = r.workflow AND x.status = 'running'
      AND (l.key_field IS NULL OR x.concurrency_key IS NOT DISTINCT FROM g.key)
) AS running
FROM runs AS r
JOIN stepwise_limits(NULL, now() - make_interval(secs => $2)) AS l ON l.workflow = r.workflow
CROSS JOIN LATERAL (
    SELECT CASE WHEN l.key_field IS NOT NULL THEN r.input ->> l.key_field END AS key
) AS g
WHERE r.id = $1;

-- name: claim_runs --
-- Take up to $3 runs of the workflows $2 that are due (pending or sleeping) or whose lease
-- expired, deadline not passed, oldest available first; lease them to worker $1 for $4 seconds
-- with a fresh token each, and return them with their steps (in first-started order).
-- SKIP LOCKED: claimers never wait for each other or for a write in flight.
-- Concurrency limits (migration 0007; $5: how many seconds a worker's limits outlive its last
-- heartbeat): due runs of a group already full are passed over, so they never hide other runs
-- behind them; the runs picked are then admitted by stepwise_admit, which counts each group
-- under its lock.
-- Steps are read through stepwise_claimed_steps, after the run is locked (migration 0002):
-- this statement's own snapshot predates the lock and could miss an accepted write. Taking
-- over an expired lease counts a recovery, reset when more steps are completed than at the
-- previous claim.
-- Versions (migration 0010): a run pinned to a version is taken only if the claimer's
-- registered versions of its workflow list it; an unpinned run is pinned to the first
-- (newest) of them, and stays unpinned when the claimer serves the workflow unversioned.
WITH served AS MATERIALIZED (
    SELECT versions FROM workers WHERE id = $1
), limited AS MATERIALIZED (
    SELECT *
    FROM stepwise_limits($1, now() - make_interval(secs => $5))
    WHERE workflow = ANY ($2::text[])
), expired AS (
    SELECT id, available_at, created_at
    FROM runs
    WHERE status = 'running' AND lease_expires_at <= now()
      AND workflow = ANY ($2::text[])
      AND (deadline_at IS NULL OR deadline_at > now())
      AND (version IS NULL OR (SELECT versions -> workflow FROM served) @> to_jsonb(version))
    ORDER BY available_at, created_at
    LIMIT $3
    FOR NO KEY UPDATE SKIP LOCKED
), due AS (
    SELECT r.id, r.available_at, r.created_at
    FROM runs AS r
    WHERE r.status IN ('pending', 'sleeping') AND r.available_at <= now()
      AND r.workflow = ANY ($2::text[])
      AND (r.deadline_at IS NULL OR r.deadline_at > now())
      AND (r.version IS NULL
          OR (SELECT versions -> r.workflow FROM served) @> to_jsonb(r.version))
      AND NOT EXISTS (
          SELECT FROM limited AS l
          WHERE l.workflow = r.workflow
            AND stepwise_group_full(r.workflow, l.key_field, l.concurrency, r.input)
      )
    ORDER BY r.available_at, r.created_at
    LIMIT $3
    FOR NO KEY UPDATE OF r SKIP LOCKED
), picked AS (
    SELECT id
    FROM (SELECT * FROM expired UNION ALL SELECT * FROM due) AS candidates
    ORDER BY available_at, created_at
    LIMIT $3
), admitted AS (
    -- Without a limit in force (the common case) the picked runs are taken as they are.
    SELECT picked.id, NULL::text AS concurrency_key
    FROM picked
    WHERE NOT EXISTS (SELECT FROM limited)
    UNION ALL
    SELECT a.id, a.concurrency_key
    FROM stepwise_admit(
        ARRAY(SELECT id FROM picked), $1, now() - make_interval(secs => $5)
    ) AS a
    WHERE EXISTS (SELECT FROM limited)
), claimed AS (
    UPDATE runs AS r
    SET status = 'running', lease_token = gen_random_uuid(), lease_owner = $1,
        concurrency_key = admitted.concurrency_key,
        version = coalesce(r.version, (SELECT versions -> r.workflow ->> 0 FROM served)),
        lease_expires_at = now() + make_interval(secs => $4), claims = r.claims + 1,
        recoveries = CASE WHEN progress.completed > r.progress_at_claim THEN 0
                ELSE r.recoveries END
            + CASE WHEN r.status = 'running' THEN 1 ELSE 0 END,
        progress_at_claim = progress.completed,
        started_at = coalesce(r.started_at, now()), updated_at = now()
    FROM admitted
    CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE s.status = 'completed') AS completed
        FROM stepwise_claimed_steps(admitted.id) AS s
    ) AS progress
    WHERE r.id = admitted.id
    RETURNING r.*
)
SELECT claimed.*,
    ARRAY(SELECT s FROM stepwise_claimed_steps(claimed.id) AS s ORDER BY s.seq) AS steps
FROM claimed
ORDER BY claimed.available_at, claimed.created_at;

-- name: heartbeat --
-- Extend the leases still held under the tokens $2 (locked in id order, like writes) and the
-- worker's own heartbeat; returns the tokens still held.
WITH worker AS (
    UPDATE workers SET heartbeat_at = now() WHERE id = $1
), held AS (
    SELECT id
    FROM runs
    WHERE lease_token = ANY ($2::uuid[]) AND status = 'running'
    ORDER BY id
    FOR NO KEY UPDATE
), extended AS (
    UPDATE runs AS r
    SET lease_expires_at = now() + make_interval(secs => $3)
    FROM held
    WHERE r.id = held.id
    RETURNING r.lease_token
)
SELECT lease_token::text AS token FROM extended;

-- name: write --
-- See stepwise_write in migrations/0013_write_per_kind.sql; returns the refused tokens.
SELECT stepwise_write($1::jsonb);

-- name: record_warning --
-- Fenced like every write: stored only while the run is still held under the token $2.
UPDATE runs SET warning = $3::json, updated_at = now()
WHERE id = $1 AND lease_token = $2::uuid AND status = 'running';

-- name: start_child --
-- Child run $4 of workflow $5 (version $6, input $7, deadline $8, traceparent $10) started by
-- step $3 of run $1,
-- fenced by the parent's token $2 (no row: the lease is gone): the child and the parent's step
-- (sleeping; awaited until $9 unless null) are stored together (migration 0009). A step that
-- exists already stores nothing and returns the child it started (started = false).
WITH parent AS (
    SELECT id FROM runs WHERE id = $1 AND lease_token = $2::uuid AND status = 'running'
    FOR NO KEY UPDATE
), step AS (
    INSERT INTO steps (run_id, key, status, attempts, started_at, wake_at, child_id)
    SELECT id, $3, 'sleeping', 1, now(), $9, $4 FROM parent
    ON CONFLICT (run_id, key) DO NOTHING
    RETURNING child_id
), child AS (
    INSERT INTO runs (
        id, workflow, version, input, deadline_at, parent_id, parent_step, traceparent
    )
    SELECT step.child_id, $5, $6, $7, $8, $1, $3, $10 FROM step
    RETURNING *
)
SELECT true AS started, child.*
FROM child
CROSS JOIN LATERAL (SELECT pg_notify(stepwise_channel('work'), '')) AS wake
UNION ALL
SELECT false AS started, runs.*
FROM parent
JOIN steps AS s ON s.run_id = parent.id AND s.key = $3
JOIN runs ON runs.id = s.child_id
WHERE NOT EXISTS (SELECT FROM step);

-- name: await_child --
-- After lock_held_run, in its transaction: the child step $2 of run $1 is awaited until $3
-- while it sleeps; returns the step as it stands. Its snapshot is taken after the lock, so it
-- sees the end of a child that committed while the lock was awaited (a child's end locks the
-- parent too, migration 0009); one statement holding both would read the step as it was
-- before.
WITH marked AS (
    UPDATE steps SET wake_at = $3
    WHERE run_id = $1 AND key = $2 AND status = 'sleeping'
    RETURNING *
)
SELECT * FROM marked
UNION ALL
SELECT * FROM steps WHERE run_id = $1 AND key = $2 AND NOT EXISTS (SELECT FROM marked);

-- name: save_schedule --
-- Create, or update in place: the pause state stays, and so does the next tick unless the
-- cron expression or the time zone changed.
INSERT INTO schedules AS s (
    name, workflow, cron, timezone, input, starting_deadline, next_fire_at
)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (name) DO UPDATE
SET workflow = excluded.workflow, cron = excluded.cron, timezone = excluded.timezone,
    input = excluded.input, starting_deadline = excluded.starting_deadline,
    next_fire_at = CASE WHEN s.cron = excluded.cron AND s.timezone = excluded.timezone
        THEN s.next_fire_at ELSE excluded.next_fire_at END,
    updated_at = now()
RETURNING *;

-- name: get_schedule --
SELECT * FROM schedules WHERE name = $1;

-- name: list_schedules --
SELECT * FROM schedules ORDER BY name;

-- name: pause_schedule --
-- Resuming ($2 false) moves the next tick to $3: ticks due while paused never fire.
UPDATE schedules
SET paused = $2,
    next_fire_at = CASE WHEN paused AND NOT $2 THEN $3 ELSE next_fire_at END,
    updated_at = now()
WHERE name = $1
RETURNING *;

-- name: delete_schedule --
DELETE FROM schedules WHERE name = $1 RETURNING name;

-- name: due_schedules --
SELECT *
FROM schedules
WHERE NOT paused AND next_fire_at <= now()
ORDER BY next_fire_at, name
LIMIT $1;

-- name: next_tick_at --
SELECT min(next_fire_at) FROM schedules WHERE NOT paused;

-- name: fire_schedule --
-- One statement, so one transaction: advance the schedule from the tick $2 the caller read to
-- $3, only if $2 still holds (of the workers that race for a tick, one advances it; the others
-- wait for its commit, see the new next_fire_at and update nothing), and start the run of the
-- tick $4 (NULL: the tick is skipped) under the idempotency key $6, a second guard. Returns
-- the id of the run started, if any.
WITH advanced AS (
    UPDATE schedules
    SET next_fire_at = $3, last_fired_at = coalesce($4, last_fired_at), updated_at = now()
    WHERE name = $1 AND next_fire_at = $2 AND NOT paused
    RETURNING workflow, input
), fired AS (
    INSERT INTO runs (id, workflow, version, input, idempotency_key, scheduled_at)
    SELECT $5, workflow, $7, input, $6, $4
    FROM advanced
    WHERE $4::timestamptz IS NOT NULL
    ON CONFLICT (workflow, idempotency_key) DO NOTHING
    RETURNING id
)
SELECT fired.id
FROM fired
CROSS JOIN LATERAL (SELECT pg_notify(stepwise_channel('work'), '')) AS wake;

-- name: wake_run --
-- Make the parked (sleeping) run $1 due now, so a worker claims it and its replay sees what it
-- was waiting for: a signal sent to it, a child run finished. THE one way to wake a parked run;
-- run it in the transaction that stored what the run waits for, after lock_run. A run still
-- running is left alone: it sees that thing when it parks (migration 0008's runs_signal_due
-- trigger does so for signals). Returns the run's id when it was woken.
WITH woken AS (
    UPDATE runs SET available_at = now(), updated_at = now()
    WHERE id = $1 AND status = 'sleeping' AND available_at > now()
    RETURNING id
)
SELECT woken.id
FROM woken
CROSS JOIN LATERAL (
    SELECT pg_notify(stepwise_channel('work'), ''), pg_notify(stepwise_channel('runs'), id::text)
) AS wake;

-- name: send_signal --
-- After lock_run, in its transaction (the lock orders this against the run parking, see
-- migration 0008). Stores signal $2 for run $1 unless idempotency key $4 was used for the run
-- already; returns the signal stored under it (created = false) or the new one, and whether a
-- step of the run waits for that name (then the caller wakes the run: wake_run).
WITH inserted AS (
    INSERT INTO signals (run_id, name, payload, idempotency_key)
    VALUES ($1, $2, $3::json, $4)
    ON CONFLICT (run_id, idempotency_key) DO NOTHING
    RETURNING *
)
SELECT true AS created, EXISTS (
        SELECT FROM steps WHERE run_id = $1 AND signal = $2 AND status = 'sleeping'
    ) AS awaited, inserted.*
FROM inserted
UNION ALL
SELECT false AS created, false AS awaited, signals.*
FROM signals
WHERE run_id = $1 AND idempotency_key = $4 AND NOT EXISTS (SELECT FROM inserted);

-- name: list_signals --
SELECT * FROM signals WHERE run_id = $1 ORDER BY seq;

-- name: lock_held_run --
-- Fenced like a write: locks run $1 only while it is running under the lease token $2.
SELECT id FROM runs WHERE id = $1 AND lease_token = $2::uuid AND status = 'running'
FOR NO KEY UPDATE;

-- name: receive_signal --
-- After lock_held_run, in its transaction: the wait step $3 of run $1 for signal $2 takes the
-- oldest undelivered signal of that name and completes with its payload; without one it
-- completes with null once its timeout $4 (null: none) has passed, or else stays sleeping,
-- waiting for $2. A step already completed is returned as it is and consumes nothing.
WITH stored AS (
    SELECT * FROM steps WHERE run_id = $1 AND key = $3 AND status = 'completed'
), delivered AS (
    UPDATE signals SET delivered_to = $3, delivered_at = now()
    WHERE seq = (
        SELECT seq FROM signals
        WHERE run_id = $1 AND name = $2 AND delivered_to IS NULL
        ORDER BY seq
        LIMIT 1
    ) AND NOT EXISTS (SELECT FROM stored)
    RETURNING payload
), outcome AS (
    SELECT coalesce(
        (SELECT payload FROM delivered), CASE WHEN $4 <= now() THEN 'null'::json END
    ) AS output
), received AS (
    INSERT INTO steps AS s (
        run_id, key, status, output, attempts, started_at, finished_at, wake_at, signal
    )
    SELECT $1, $3, CASE WHEN output IS NULL THEN 'sleeping' ELSE 'completed' END, output, 1,
        $5, CASE WHEN output IS NOT NULL THEN now() END, $4, $2
    FROM outcome
    WHERE NOT EXISTS (SELECT FROM stored)
    ON CONFLICT (run_id, key) DO UPDATE
    SET status = excluded.status, output = excluded.output, finished_at = excluded.finished_at,
        wake_at = excluded.wake_at, signal = excluded.signal
    RETURNING s.*
)
SELECT * FROM received
UNION ALL
SELECT * FROM stored;
