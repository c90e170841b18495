-- Signals (see the Postgres twin of this migration): the buffer of signals sent to runs, and
-- the signal name a waiting step waits for.

ALTER TABLE steps ADD COLUMN signal TEXT;

CREATE TABLE signals (
    seq INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    payload TEXT NOT NULL,
    idempotency_key TEXT,
    sent_at TEXT NOT NULL,
    delivered_to TEXT,
    delivered_at TEXT,
    UNIQUE (run_id, idempotency_key)
);

CREATE INDEX signals_undelivered ON signals (run_id, name, seq) WHERE delivered_to IS NULL;

-- A run that parks (running → sleeping) while a signal it waits for is already there is due
-- at once: the signal was sent while the run was running, so its sender had no parked run to
-- wake. Writers take turns on the database's one write lock, so the check cannot miss it.
CREATE TRIGGER runs_signal_due AFTER UPDATE OF status ON runs
FOR EACH ROW WHEN OLD.status = 'running' AND NEW.status = 'sleeping' AND EXISTS (
    SELECT 1 FROM steps AS s
    JOIN signals AS g ON g.run_id = s.run_id AND g.name = s.signal
    WHERE s.run_id = NEW.id AND s.status = 'sleeping' AND g.delivered_to IS NULL
)
BEGIN
    UPDATE runs SET available_at = NEW.updated_at
    WHERE id = NEW.id AND available_at > NEW.updated_at;
END;
