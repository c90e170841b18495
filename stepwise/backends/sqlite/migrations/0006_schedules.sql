-- Schedules (see the Postgres twin of this migration). SQLite fires a tick in one
-- BEGIN IMMEDIATE transaction: advance next_fire_at if it still holds the tick, then insert
-- the tick's run under the idempotency key schedule:<name>:<tick>.

CREATE TABLE schedules (
    name TEXT PRIMARY KEY,
    workflow TEXT NOT NULL,
    cron TEXT NOT NULL,
    timezone TEXT NOT NULL,
    input TEXT NOT NULL,
    starting_deadline REAL NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    next_fire_at TEXT NOT NULL,
    last_fired_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE paused = 0;

ALTER TABLE runs ADD COLUMN scheduled_at TEXT;
