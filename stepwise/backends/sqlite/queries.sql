-- Named queries of the SQLite backend (loaded by stepwise.backends.sqlfiles.load_queries).
-- Parameters are named (:name). Timestamps are UTC ISO-8601 text of fixed width, computed by
-- Python, so comparing the text compares the times. Lists travel as JSON arrays (json_each).
-- Runs and steps are read whole (SELECT *): records take the columns named like their fields
-- (stepwise.backends.encoding), so a new column is read without touching a query.

-- name: configure_connection --
-- WAL lets readers run beside the one writer, across processes. synchronous=FULL syncs the WAL
-- on every commit: a completed step survives a power loss, not only a process crash.
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
PRAGMA foreign_keys = ON;
-- A canceled run's trigger cancels its children, whose own trigger cancels theirs (0009).
PRAGMA recursive_triggers = ON;

-- name: begin_immediate --
-- Take the database's write lock now, so a check and the write that depends on it are atomic
-- across processes (busy_timeout makes other writers wait instead of failing).
BEGIN IMMEDIATE;

-- name: create_migrations_table --
CREATE TABLE IF NOT EXISTS stepwise_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at TEXT NOT NULL
);

-- name: applied_migrations --
SELECT version FROM stepwise_migrations;

-- name: record_migration --
INSERT INTO stepwise_migrations (version, name, applied_at) VALUES (:version, :name, :now);

-- name: insert_run --
-- A run with an idempotency key already used for its workflow inserts nothing (no row back).
INSERT INTO runs (
    id, workflow, version, status, input, idempotency_key, deadline_at, available_at,
    created_at, updated_at, scheduled_at, traceparent
)
VALUES (
    :id, :workflow, :version, 'pending', :input, :idempotency_key, :deadline_at, :available_at,
    :now, :now, :scheduled_at, :traceparent
)
ON CONFLICT (workflow, idempotency_key) DO NOTHING
RETURNING *;

-- name: run_by_idempotency_key --
SELECT *
FROM runs
WHERE workflow = :workflow AND idempotency_key = :idempotency_key;

-- name: get_run --
SELECT *
FROM runs
WHERE id = :id;

-- name: list_runs --
-- Newest first, by keyset (created_at, id) (migration 0010): a page starts after the previous
-- page's last run (:after_created_at, :after_id; NULL: the first page), so runs created
-- meanwhile never shift a page.
SELECT *
FROM runs
WHERE (:workflow IS NULL OR workflow = :workflow)
  AND (:statuses IS NULL OR status IN (SELECT value FROM json_each(:statuses)))
  AND (:since IS NULL OR created_at >= :since)
  AND (:until IS NULL OR created_at < :until)
  AND (:after_created_at IS NULL OR (created_at, id) < (:after_created_at, :after_id))
  AND (:parent_id IS NULL OR parent_id = :parent_id)
ORDER BY created_at DESC, id DESC
LIMIT :limit;

-- name: count_runs --
SELECT count(*)
FROM runs
WHERE (:workflow IS NULL OR workflow = :workflow)
  AND (:statuses IS NULL OR status IN (SELECT value FROM json_each(:statuses)))
  AND (:since IS NULL OR created_at >= :since)
  AND (:until IS NULL OR created_at < :until);

-- name: active_runs --
-- The metrics' gauges: runs not finished, per workflow, read through the claim's partial indexes
-- (runs_claimable, runs_leased), so finished runs cost nothing. One row for each workflow of
-- :known (a JSON array) or registered by a worker, then one (NULL) for all others together.
WITH active AS (
    SELECT workflow,
        sum(status = 'pending') AS pending,
        0 AS running,
        sum(status = 'sleeping') AS sleeping,
        sum(available_at <= :now) AS due
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
    SELECT value AS workflow FROM json_each(:known)
    UNION
    SELECT j.value FROM workers, json_each(workers.workflows) AS j
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
-- The ids that start with a prefix: ``low`` and ``high`` are the prefix padded with 0s and fs.
SELECT id
FROM runs
WHERE id BETWEEN :low AND :high
ORDER BY id
LIMIT :limit;

-- name: list_steps --
-- First-started order; a page starts after :after_seq (NULL: the first), at most :limit (-1: all).
SELECT *
FROM steps
WHERE run_id = :run_id AND (:after_seq IS NULL OR seq > :after_seq)
ORDER BY seq
LIMIT :limit;

-- name: list_logs --
-- A run's log lines after seq :after, at most :limit.
SELECT * FROM run_logs WHERE run_id = :run_id AND seq > :after ORDER BY seq LIMIT :limit;

-- name: last_logs --
-- A run's last :limit log lines, oldest first.
SELECT * FROM (
    SELECT * FROM run_logs WHERE run_id = :run_id ORDER BY seq DESC LIMIT :limit
) ORDER BY seq;

-- name: cancel_run --
-- lease_expires_at stays: until then the holder may still be starting steps, so a retry makes
-- the run available only after it.
UPDATE runs
SET status = 'canceled', finished_at = :now, updated_at = :now,
    lease_token = NULL, lease_owner = NULL
WHERE id = :id AND status IN ('pending', 'running', 'sleeping')
RETURNING id;

-- name: expire_runs --
-- The error document has the shape every stored error has: {"type", "message"}. A run waiting
-- for a workflow retry keeps the error of its last attempt: that is why it failed, the deadline
-- only stopped the retry. lease_expires_at stays, as in cancel_run.
UPDATE runs
SET status = 'failed', finished_at = :now, updated_at = :now,
    error = coalesce(error, json_object(
        'type', 'DeadlineExceeded',
        'message', 'the run passed its deadline (' || deadline_at || ')'
    )),
    lease_token = NULL, lease_owner = NULL
WHERE deadline_at <= :now AND status IN ('pending', 'running', 'sleeping')
RETURNING id;

-- name: cancel_steps --
-- The steps in flight (running or sleeping) of runs that ended without them: canceled, or
-- failed by their deadline; in the transaction that ended the runs.
UPDATE steps
SET status = 'canceled', finished_at = :now
WHERE run_id IN (SELECT value FROM json_each(:ids)) AND status IN ('running', 'sleeping');

-- name: lock_run --
-- A retry's first read, under the write lock its transaction holds (see the Postgres twin).
SELECT status FROM runs WHERE id = :id;

-- name: record_attempt --
-- The attempt a retry closes, as it ended.
INSERT INTO run_attempts (run_id, attempt, status, error, finished_at, retried_at)
SELECT id, attempt, status, error, finished_at, :now
FROM runs
WHERE id = :id;

-- name: erase_unfinished_steps --
-- What a retry runs again: failed steps (with a fresh attempt budget), and steps canceled in
-- flight by a cancel or a deadline.
DELETE FROM steps WHERE run_id = :id AND status <> 'completed';

-- name: resume_run --
-- :deadline_at replaces the deadline; null keeps one still ahead and drops one passed.
-- Available once the lease of the run's last holder has expired (cancel_run keeps it).
UPDATE runs
SET status = 'pending', attempt = attempt + 1, first_attempt = attempt + 1,
    output = NULL, error = NULL, finished_at = NULL, recoveries = 0,
    deadline_at = CASE WHEN :deadline_at IS NOT NULL THEN :deadline_at
        WHEN deadline_at > :now THEN deadline_at END,
    available_at = max(:now, coalesce(lease_expires_at, :now)), lease_expires_at = NULL,
    updated_at = :now
WHERE id = :id
RETURNING *;

-- name: list_attempts --
SELECT * FROM run_attempts WHERE run_id = :run_id ORDER BY attempt;

-- name: fork_run --
-- The new run :id of the same workflow, version and input as :source; fork_steps then copies
-- its steps, in the same transaction.
INSERT INTO runs (
    id, workflow, version, status, input, forked_from, available_at, created_at, updated_at
)
SELECT :id, workflow, version, 'pending', input, id, :now, :now, :now
FROM runs
WHERE id = :source
RETURNING *;

-- name: fork_steps --
-- :source's steps completed before step :from_step, copied to :id in first-started order, so
-- the fork's seq keeps the original's order.
INSERT INTO steps (run_id, key, status, output, error, attempts, started_at, finished_at, wake_at)
SELECT :id, key, status, output, error, attempts, started_at, finished_at, wake_at
FROM steps
WHERE run_id = :source AND status = 'completed'
  AND seq < (SELECT seq FROM steps WHERE run_id = :source AND key = :from_step)
ORDER BY seq;

-- name: prune_runs --
-- Up to :limit finished runs that finished before :cutoff, oldest first; their steps and
-- attempts go with them (ON DELETE CASCADE; foreign_keys is on for every connection).
DELETE FROM runs
WHERE id IN (
    SELECT id
    FROM runs
    WHERE status IN ('succeeded', 'failed', 'canceled') AND finished_at < :cutoff
    ORDER BY finished_at
    LIMIT :limit
);

-- name: register_worker --
INSERT INTO workers (
    id, hostname, workflows, concurrency, limits, versions, started_at, heartbeat_at
)
VALUES (:id, :hostname, :workflows, :concurrency, :limits, :versions, :now, :now)
ON CONFLICT (id) DO UPDATE
SET hostname = excluded.hostname, workflows = excluded.workflows,
    concurrency = excluded.concurrency, limits = excluded.limits, versions = excluded.versions,
    started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at;

-- name: unregister_worker --
DELETE FROM workers WHERE id = :id;

-- name: serving_workers --
-- :version: only the workers that serve this version of the workflow (NULL: any). Workflow
-- names hold no '"', so '$."<name>"' is the path of its versions.
SELECT count(*)
FROM workers
WHERE heartbeat_at >= :since
  AND EXISTS (SELECT 1 FROM json_each(workers.workflows) WHERE value = :workflow)
  AND (:version IS NULL OR EXISTS (
      SELECT 1 FROM json_each(workers.versions, '$."' || :workflow || '"')
      WHERE value = :version
  ));

-- name: served_versions --
SELECT DISTINCT v.value AS version
FROM workers AS w, json_each(w.versions, '$."' || :workflow || '"') AS v
WHERE w.heartbeat_at >= :since;

-- name: concurrency_use --
-- The limit in force for run :id's workflow (the strictest declared by a worker that
-- heartbeated since :since, as in claim_candidates), the run's key under it and how many runs
-- of its group are running; no row without a limit.
WITH declared AS (
    SELECT l.key AS workflow, json_extract(l.value, '$.concurrency') AS concurrency,
        json_extract(l.value, '$.key') AS key_field
    FROM workers AS w, json_each(w.limits) AS l
    WHERE w.heartbeat_at >= :since
), grouped AS (
    SELECT r.workflow, d.concurrency, d.key_field,
        CASE WHEN d.key_field IS NOT NULL
            THEN CAST(json_extract(r.input, '$."' || d.key_field || '"') AS TEXT)
        END AS key
    FROM runs AS r
    JOIN declared AS d ON d.workflow = r.workflow
    WHERE r.id = :id
    ORDER BY d.concurrency, d.key_field IS NOT NULL, d.key_field
    LIMIT 1
)
SELECT g.concurrency, g.key_field, g.key, (
    SELECT count(*)
    FROM runs AS x
    WHERE x.workflow = g.workflow AND x.status = 'running'
      AND (g.key_field IS NULL OR x.concurrency_key IS g.key)
) AS running
FROM grouped AS g;

-- name: claim_candidates --
-- Runs of the given workflows that are due (or whose lease expired) and whose deadline has not
-- passed, oldest available first. Two halves, so each can use its partial index.
-- Concurrency limits (migration 0007): the limit in force for a workflow is the strictest one
-- declared by the claimer :worker or a worker that heartbeated since :since (smallest N; at
-- equal N a workflow-wide cap first). A takeover of an expired lease keeps its run's slot; due
-- runs of a group are taken, oldest first, only into the slots its running runs leave free.
-- Read under the write lock, the counts stay true until the claim commits.
-- Versions (migration 0010): a run pinned to a version is a candidate only if :worker's
-- registered versions of its workflow list it (claim_run pins an unpinned one).
WITH declared AS (
    SELECT l.key AS workflow, json_extract(l.value, '$.concurrency') AS concurrency,
        json_extract(l.value, '$.key') AS key_field,
        row_number() OVER (
            PARTITION BY l.key
            ORDER BY json_extract(l.value, '$.concurrency'),
                json_extract(l.value, '$.key') IS NOT NULL, json_extract(l.value, '$.key')
        ) AS strictness
    FROM workers AS w, json_each(w.limits) AS l
    WHERE w.id = :worker OR w.heartbeat_at >= :since
), candidates AS (
    SELECT id, workflow, status, input, available_at, created_at, rowid AS seq
    FROM runs
    WHERE workflow IN (SELECT value FROM json_each(:workflows))
      AND status IN ('pending', 'sleeping') AND available_at <= :now
      AND (deadline_at IS NULL OR deadline_at > :now)
      AND (version IS NULL OR EXISTS (
          SELECT 1 FROM workers AS w, json_each(w.versions, '$."' || runs.workflow || '"') AS v
          WHERE w.id = :worker AND v.value = runs.version
      ))
    UNION ALL
    SELECT id, workflow, status, input, available_at, created_at, rowid AS seq
    FROM runs
    WHERE workflow IN (SELECT value FROM json_each(:workflows))
      AND status = 'running' AND lease_expires_at <= :now
      AND (deadline_at IS NULL OR deadline_at > :now)
      AND (version IS NULL OR EXISTS (
          SELECT 1 FROM workers AS w, json_each(w.versions, '$."' || runs.workflow || '"') AS v
          WHERE w.id = :worker AND v.value = runs.version
      ))
), grouped AS (
    SELECT c.id, c.workflow, c.status, c.available_at, c.created_at, c.seq, d.concurrency,
        d.key_field,
        CASE WHEN d.key_field IS NOT NULL
            THEN CAST(json_extract(c.input, '$."' || d.key_field || '"') AS TEXT)
        END AS concurrency_key
    FROM candidates AS c
    LEFT JOIN declared AS d ON d.workflow = c.workflow AND d.strictness = 1
), ranked AS (
    SELECT g.*,
        row_number() OVER (
            PARTITION BY g.workflow, g.concurrency_key, g.status = 'running'
            ORDER BY g.available_at, g.created_at, g.seq
        ) AS place
    FROM grouped AS g
)
SELECT r.id, r.concurrency_key
FROM ranked AS r
WHERE r.concurrency IS NULL OR r.status = 'running' OR r.place <= r.concurrency - (
    SELECT count(*)
    FROM runs AS x
    WHERE x.workflow = r.workflow AND x.status = 'running'
      AND (r.key_field IS NULL OR x.concurrency_key IS r.concurrency_key)
)
ORDER BY r.available_at, r.created_at, r.seq
LIMIT :limit;

-- name: claim_run --
-- Taking over an expired lease counts a recovery, reset when more steps are completed than at
-- the previous claim (the claim holds the write lock: it sees every accepted write). An
-- unpinned run is pinned to the newest version the claimer serves of its workflow, if any.
UPDATE runs
SET status = 'running', lease_token = :token, lease_owner = :owner,
    lease_expires_at = :expires_at, claims = claims + 1, concurrency_key = :concurrency_key,
    version = coalesce(version, (
        SELECT json_extract(w.versions, '$."' || runs.workflow || '"[0]')
        FROM workers AS w WHERE w.id = :owner
    )),
    recoveries = iif(progress.completed > progress_at_claim, 0, recoveries)
        + iif(status = 'running', 1, 0),
    progress_at_claim = progress.completed,
    started_at = coalesce(started_at, :now), updated_at = :now
FROM (
    SELECT count(*) AS completed FROM steps WHERE run_id = :id AND status = 'completed'
) AS progress
WHERE id = :id;

-- name: runs_by_ids --
SELECT *
FROM runs
WHERE id IN (SELECT value FROM json_each(:ids));

-- name: steps_of_runs --
SELECT *
FROM steps
WHERE run_id IN (SELECT value FROM json_each(:ids))
ORDER BY seq;

-- name: heartbeat_runs --
-- Returns the tokens still held; the caller reports the others as lost.
UPDATE runs
SET lease_expires_at = :expires_at
WHERE lease_token IN (SELECT value FROM json_each(:tokens)) AND status = 'running'
RETURNING lease_token;

-- name: heartbeat_worker --
UPDATE workers SET heartbeat_at = :now WHERE id = :id;

-- name: fence_ops --
-- The fencing rule, in the words of stepwise_write (the Postgres twin, migration 0001): an op
-- applies only while its run is 'running' under the op's token; a token's ops stop applying at
-- its first op that fails that check, and after the op that ends its lease (finish, suspend,
-- release, retry). :batch is the JSON array of the ops' {token, run_id, kind}, in order;
-- returns each op's position and verdict. Read under the write lock: it stays true until the
-- commit.
WITH ops AS (
    SELECT CAST(o.key AS INTEGER) AS n, json_extract(o.value, '$.token') AS token,
        json_extract(o.value, '$.run_id') AS run_id, json_extract(o.value, '$.kind') AS kind
    FROM json_each(:batch) AS o
), held AS (
    SELECT r.id, r.lease_token AS token
    FROM runs AS r
    WHERE r.id IN (SELECT ops.run_id FROM ops) AND r.status = 'running'
), judged AS (
    SELECT ops.n, ops.token,
        min(CASE WHEN held.id IS NULL THEN ops.n END) OVER per_token AS first_unheld,
        min(CASE WHEN ops.kind IN ('finish_run', 'suspend_run', 'release_run', 'retry_run')
            THEN ops.n END) OVER per_token AS lease_end
    FROM ops
    LEFT JOIN held ON held.id = ops.run_id AND held.token = ops.token
    WINDOW per_token AS (PARTITION BY ops.token)
)
SELECT n, token,
    n < coalesce(first_unheld, 2147483647) AND n <= coalesce(lease_end, 2147483647) AS ok
FROM judged
ORDER BY n;

-- name: step_started --
-- A completed step is final; a restarted one keeps its first started_at.
INSERT INTO steps (run_id, key, status, attempts, started_at)
VALUES (:run_id, :key, 'running', :attempts, :started_at)
ON CONFLICT (run_id, key) DO UPDATE
SET status = 'running', attempts = excluded.attempts,
    started_at = coalesce(steps.started_at, excluded.started_at)
WHERE steps.status <> 'completed';

-- name: step_finished --
INSERT INTO steps (run_id, key, status, output, error, attempts, started_at, finished_at)
VALUES (:run_id, :key, :status, :output, :error, :attempts, :started_at, :finished_at)
ON CONFLICT (run_id, key) DO UPDATE
SET status = excluded.status, output = excluded.output, error = excluded.error,
    attempts = excluded.attempts, finished_at = excluded.finished_at,
    started_at = coalesce(steps.started_at, excluded.started_at)
WHERE steps.status <> 'completed';

-- name: step_sleeping --
INSERT INTO steps (run_id, key, status, attempts, started_at, wake_at)
VALUES (:run_id, :key, 'sleeping', 1, :started_at, :wake_at)
ON CONFLICT (run_id, key) DO UPDATE
SET status = 'sleeping', wake_at = excluded.wake_at,
    started_at = coalesce(steps.started_at, excluded.started_at)
WHERE steps.status <> 'completed';

-- name: finish_run --
UPDATE runs
SET status = :status, output = :output, error = :error, finished_at = :now, updated_at = :now,
    lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL
WHERE id = :run_id AND lease_token = :token;

-- name: suspend_run --
UPDATE runs
SET status = 'sleeping', available_at = :available_at, updated_at = :now,
    lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL
WHERE id = :run_id AND lease_token = :token;

-- name: release_run --
UPDATE runs
SET status = 'pending', available_at = :now, updated_at = :now,
    lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL
WHERE id = :run_id AND lease_token = :token;

-- name: retry_run --
UPDATE runs
SET status = 'pending', available_at = :available_at, attempt = attempt + 1, error = :error,
    updated_at = :now, lease_token = NULL, lease_owner = NULL, lease_expires_at = NULL
WHERE id = :run_id AND lease_token = :token;

-- name: delete_failed_steps --
DELETE FROM steps WHERE run_id = :run_id AND status = 'failed';

-- name: log_line --
-- One log line, in the words of stepwise_write's log section (the Postgres twin, migration
-- 0011): stored after the run's last line, unless it is a body line a replay repeats; once
-- the run holds :max_records lines, counted in the marker row instead, which moves to the end.
WITH stored AS (
    SELECT coalesce(max(seq), 0) AS last,
        count(*) FILTER (WHERE dropped IS NULL) >= :max_records AS full
    FROM run_logs
    WHERE run_id = :run_id
)
INSERT INTO run_logs (run_id, seq, at, level, logger, step, attempt, ordinal, message, dropped)
SELECT :run_id, stored.last + 1, :at,
    CASE WHEN stored.full THEN 30 ELSE :level END,
    CASE WHEN stored.full THEN 'stepwise' ELSE :logger END,
    CASE WHEN stored.full THEN NULL ELSE :key END,
    CASE WHEN stored.full THEN NULL ELSE :attempt END,
    CASE WHEN stored.full THEN NULL ELSE :ordinal END,
    CASE WHEN stored.full THEN '' ELSE :message END,
    CASE WHEN stored.full THEN 1 END
FROM stored
WHERE NOT EXISTS (
    SELECT 1 FROM run_logs AS b
    WHERE :key IS NULL AND b.run_id = :run_id AND b.step IS NULL
      AND b.attempt = :attempt AND b.ordinal = :ordinal
)
ON CONFLICT (run_id) WHERE dropped IS NOT NULL DO UPDATE
SET seq = excluded.seq, at = excluded.at, dropped = run_logs.dropped + 1;

-- name: record_warning --
-- Fenced like every write: stored only while the run is still held under the token.
UPDATE runs SET warning = :warning, updated_at = :now
WHERE id = :run_id AND lease_token = :token AND status = 'running';

-- name: child_of_step --
SELECT runs.*
FROM steps
JOIN runs ON runs.id = steps.child_id
WHERE steps.run_id = :run_id AND steps.key = :key;

-- name: insert_child --
-- With the parent's step (insert_child_step), in one transaction (see start_child in the
-- Postgres twin).
INSERT INTO runs (
    id, workflow, version, status, input, deadline_at, available_at, created_at, updated_at,
    parent_id, parent_step, traceparent
)
VALUES (
    :id, :workflow, :version, 'pending', :input, :deadline_at, :now, :now, :now,
    :run_id, :key, :traceparent
)
RETURNING *;

-- name: insert_child_step --
INSERT INTO steps (run_id, key, status, attempts, started_at, wake_at, child_id)
VALUES (:run_id, :key, 'sleeping', 1, :now, :wake_at, :id);

-- name: await_child --
-- The child step is awaited until :wake_at while it sleeps (after lock_held_run).
UPDATE steps SET wake_at = :wake_at
WHERE run_id = :run_id AND key = :key AND status = 'sleeping';

-- name: step_of_run --
SELECT * FROM steps WHERE run_id = :run_id AND key = :key;

-- name: save_schedule --
-- Create, or update in place: the pause state stays, and so does the next tick unless the
-- cron expression or the time zone changed.
INSERT INTO schedules AS s (
    name, workflow, cron, timezone, input, starting_deadline, next_fire_at, created_at,
    updated_at
)
VALUES (
    :name, :workflow, :cron, :timezone, :input, :starting_deadline, :next_fire_at, :now, :now
)
ON CONFLICT (name) DO UPDATE
SET workflow = excluded.workflow, cron = excluded.cron, timezone = excluded.timezone,
    input = excluded.input, starting_deadline = excluded.starting_deadline,
    next_fire_at = CASE WHEN s.cron = excluded.cron AND s.timezone = excluded.timezone
        THEN s.next_fire_at ELSE excluded.next_fire_at END,
    updated_at = excluded.updated_at
RETURNING *;

-- name: get_schedule --
SELECT * FROM schedules WHERE name = :name;

-- name: list_schedules --
SELECT * FROM schedules ORDER BY name;

-- name: pause_schedule --
-- Resuming (:paused 0) moves the next tick to :next_fire_at: ticks due while paused never fire.
UPDATE schedules
SET paused = :paused,
    next_fire_at = CASE WHEN paused AND NOT :paused THEN :next_fire_at ELSE next_fire_at END,
    updated_at = :now
WHERE name = :name
RETURNING *;

-- name: delete_schedule --
DELETE FROM schedules WHERE name = :name RETURNING name;

-- name: due_schedules --
SELECT *
FROM schedules
WHERE paused = 0 AND next_fire_at <= :now
ORDER BY next_fire_at, name
LIMIT :limit;

-- name: next_tick_at --
SELECT min(next_fire_at) FROM schedules WHERE paused = 0;

-- name: advance_schedule --
-- The first half of fire_schedule (Postgres), under BEGIN IMMEDIATE: advance only if the tick
-- the caller read still holds; the caller inserts the run only when a row was updated.
UPDATE schedules
SET next_fire_at = :next_fire_at, last_fired_at = coalesce(:fire, last_fired_at),
    updated_at = :now
WHERE name = :name AND next_fire_at = :due AND paused = 0
RETURNING workflow, input;

-- name: insert_scheduled_run --
-- The second half: the tick's run, under its idempotency key (a second guard).
INSERT INTO runs (
    id, workflow, version, status, input, idempotency_key, available_at, created_at,
    updated_at, scheduled_at
)
VALUES (
    :run_id, :workflow, :version, 'pending', :input, :idempotency_key, :now, :now, :now, :fire
)
ON CONFLICT (workflow, idempotency_key) DO NOTHING
RETURNING id;

-- name: wake_run --
-- Make the parked (sleeping) run due now (see the Postgres twin): THE one way to wake a parked
-- run, in the transaction that stored what it waits for. Returns the run's id when woken.
UPDATE runs SET available_at = :now, updated_at = :now
WHERE id = :run_id AND status = 'sleeping' AND available_at > :now
RETURNING id;

-- name: insert_signal --
-- Stores the signal unless its idempotency key was used for the run already (no row then).
INSERT INTO signals (run_id, name, payload, idempotency_key, sent_at)
VALUES (:run_id, :name, :payload, :idempotency_key, :now)
ON CONFLICT (run_id, idempotency_key) DO NOTHING
RETURNING *;

-- name: signal_by_idempotency_key --
SELECT * FROM signals WHERE run_id = :run_id AND idempotency_key = :idempotency_key;

-- name: signal_awaited --
-- Whether a step of the run waits for a signal of that name (then the sender wakes the run).
SELECT EXISTS (
    SELECT 1 FROM steps WHERE run_id = :run_id AND signal = :name AND status = 'sleeping'
);

-- name: list_signals --
SELECT * FROM signals WHERE run_id = :run_id ORDER BY seq;

-- name: lock_held_run --
-- Fenced like a write: the run, only while it is running under the lease token (the
-- transaction holds the write lock).
SELECT id FROM runs WHERE id = :run_id AND lease_token = :token AND status = 'running';

-- name: completed_step --
SELECT * FROM steps WHERE run_id = :run_id AND key = :key AND status = 'completed';

-- name: deliver_signal --
-- The oldest undelivered signal of the name goes to the wait step :key; returns its payload.
UPDATE signals SET delivered_to = :key, delivered_at = :now
WHERE seq = (
    SELECT seq FROM signals
    WHERE run_id = :run_id AND name = :name AND delivered_to IS NULL
    ORDER BY seq
    LIMIT 1
)
RETURNING payload;

-- name: store_wait --
-- The wait step: completed with :output (a payload, or null JSON at its timeout), or, when
-- :output is NULL, sleeping until :wake_at (NULL: no timeout), waiting for signal :name.
INSERT INTO steps (run_id, key, status, output, attempts, started_at, finished_at, wake_at, signal)
VALUES (
    :run_id, :key, iif(:output IS NULL, 'sleeping', 'completed'), :output, 1, :started_at,
    iif(:output IS NULL, NULL, :now), :wake_at, :name
)
ON CONFLICT (run_id, key) DO UPDATE
SET status = excluded.status, output = excluded.output, finished_at = excluded.finished_at,
    wake_at = excluded.wake_at, signal = excluded.signal
WHERE steps.status <> 'completed'
RETURNING *;
