-- Named queries of the benchmark (loaded by stepwise.backends.sqlfiles.load_queries("bench")).
-- Identifiers in {braces} are filled with quoted names; values are $n parameters.

-- name: drop_database --
DROP DATABASE IF EXISTS {database} WITH (FORCE);

-- name: create_database --
CREATE DATABASE {database};

-- name: checkpoint --
CHECKPOINT;

-- name: server_version --
SELECT current_setting('server_version');

-- name: durability_settings --
SELECT name, setting FROM pg_settings
WHERE name IN (
    'fsync', 'synchronous_commit', 'wal_sync_method', 'full_page_writes', 'shared_buffers',
    'max_connections', 'max_wal_size', 'checkpoint_timeout'
)
ORDER BY name;

-- name: database_counters --
-- Transactions committed in one database (read-only ones included) and rows written there.
-- Counters of a backend reach this view when it exits, so read them after the clients are gone.
SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted
FROM pg_stat_database WHERE datname = $1;

-- name: wal_counters --
SELECT pg_current_wal_lsn()::text AS lsn, wal_records, wal_bytes::bigint AS wal_bytes,
       wal_write, wal_sync
FROM pg_stat_wal;

-- name: current_lsn --
SELECT pg_current_wal_lsn()::text;

-- name: stepwise_progress --
-- Finished runs (any final status) and the ones that succeeded, for the 10 ms completion poll.
SELECT count(*) FILTER (WHERE status IN ('succeeded', 'failed', 'canceled')),
       count(*) FILTER (WHERE status = 'succeeded')
FROM {schema}.runs;

-- name: stepwise_span --
-- Database-side span: the first claim to the last finish, in epoch seconds; and step rows.
SELECT count(*) FILTER (WHERE status = 'succeeded'),
       extract(epoch FROM min(started_at))::float8,
       extract(epoch FROM max(finished_at))::float8,
       (SELECT count(*) FROM {schema}.steps WHERE status = 'completed')
FROM {schema}.runs;

-- name: stepwise_latencies --
-- Per run: created (the client's INSERT) to finished (the worker's final write), in seconds.
SELECT extract(epoch FROM finished_at - created_at)::float8
FROM {schema}.runs WHERE status = 'succeeded' AND workflow = $1
ORDER BY created_at;

-- name: openworkflow_span --
SELECT count(*) FILTER (WHERE status = 'completed'),
       extract(epoch FROM min(started_at))::float8,
       extract(epoch FROM max(finished_at))::float8,
       (SELECT count(*) FROM openworkflow.step_attempts WHERE status = 'completed')
FROM openworkflow.workflow_runs;

-- name: dbos_progress --
SELECT count(*) FROM dbos.workflow_status WHERE queue_name = %s AND status = 'SUCCESS';

-- name: dbos_span --
SELECT count(*) FILTER (WHERE status = 'SUCCESS'),
       (min(started_at_epoch_ms) / 1000.0)::float8,
       (max(completed_at) / 1000.0)::float8,
       (SELECT count(*) FROM dbos.operation_outputs)
FROM dbos.workflow_status;

-- name: openworkflow_latencies --
SELECT extract(epoch FROM finished_at - created_at)::float8
FROM openworkflow.workflow_runs WHERE status = 'completed'
ORDER BY created_at;

-- name: stepwise_timeline --
-- When runs were created (the operator's client.start), first claimed and last finished.
SELECT count(*), extract(epoch FROM min(created_at))::float8,
       extract(epoch FROM max(created_at))::float8,
       extract(epoch FROM max(finished_at))::float8
FROM {schema}.runs;

-- name: stepwise_finish_times --
-- The scale suite's drain curve: when each run finished, in order, in epoch seconds.
SELECT extract(epoch FROM finished_at)::float8
FROM {schema}.runs WHERE finished_at IS NOT NULL
ORDER BY finished_at;

-- name: stepwise_workers --
-- Worker processes registered (the scale suite waits for all of them before it enqueues).
SELECT count(*) FROM {schema}.workers;

-- name: wal_bytes_between --
SELECT pg_wal_lsn_diff($2::text::pg_lsn, $1::text::pg_lsn)::bigint;
