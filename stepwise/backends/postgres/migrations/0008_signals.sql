-- Signals: client.signal(run_id, name, payload) and ctx.step.wait_for_signal(name).
--
-- signals is the buffer: a signal is kept from the moment it is sent until a wait step of its
-- run consumes it, so one sent before the workflow waits is not lost. seq is the send order;
-- a wait consumes the oldest undelivered signal of its name (delivered_to: the wait step's
-- memo key), in the transaction that stores that step's result, so each signal reaches
-- exactly one wait, exactly once. A repeated (run, idempotency key) stores nothing.
--
-- steps.signal: the name a waiting step (status 'sleeping') waits for; null for other steps.

ALTER TABLE steps ADD COLUMN signal text;

CREATE TABLE signals (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name text NOT NULL,
    payload json NOT NULL,
    idempotency_key text,
    sent_at timestamptz NOT NULL DEFAULT now(),
    delivered_to text,
    delivered_at timestamptz,
    UNIQUE (run_id, idempotency_key)
);

-- A wait looks up the oldest undelivered signal of its name.
CREATE INDEX signals_undelivered ON signals (run_id, name, seq) WHERE delivered_to IS NULL;

-- A run that parks (running → sleeping) while a signal it waits for is already there is due
-- at once. This closes the race with a signal sent while the run was still running, whose
-- sender found no parked run to wake (wake_run): the sender locks the run before it stores
-- the signal, and the parking write holds that lock from its start, so either this check
-- sees the signal or the sender sees the parked run. The function's query takes a snapshot of
-- its own (plpgsql, VOLATILE), after the lock.
CREATE FUNCTION stepwise_signal_due() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF EXISTS (
        SELECT FROM steps AS s
        JOIN signals AS g ON g.run_id = s.run_id AND g.name = s.signal
        WHERE s.run_id = NEW.id AND s.status = 'sleeping' AND g.delivered_to IS NULL
    ) THEN
        NEW.available_at := least(NEW.available_at, now());
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER runs_signal_due BEFORE UPDATE OF status ON runs
FOR EACH ROW WHEN (OLD.status = 'running' AND NEW.status = 'sleeping')
EXECUTE FUNCTION stepwise_signal_due();
