-- Schedules: a cron expression that starts runs of a workflow. A tick fires exactly once
-- across any number of workers because firing is ONE statement (fire_schedule) that advances
-- next_fire_at only if it still holds the tick the worker saw, and inserts the tick's run in
-- the same transaction under the idempotency key schedule:<name>:<tick>.
-- runs.scheduled_at is the tick a scheduled run was started for (ctx.scheduled_at).

CREATE TABLE schedules (
    name text PRIMARY KEY,
    workflow text NOT NULL,
    cron text NOT NULL,
    timezone text NOT NULL,
    input jsonb NOT NULL,
    starting_deadline double precision NOT NULL,
    paused boolean NOT NULL DEFAULT false,
    next_fire_at timestamptz NOT NULL,
    last_fired_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The ticker's question, every poll: which schedules are due.
CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE NOT paused;

ALTER TABLE runs ADD COLUMN scheduled_at timestamptz;
