-- Child workflows: ctx.step.run_workflow / start_workflow start a run from a step.
--
-- runs.parent_id, runs.parent_step: the run and the step of it that started this run. Not a
-- foreign key: retention may prune either one first.
-- steps.child_id: the child run a step started. The step sleeps while the child runs and then
-- holds the child's end: completed with its output, or failed with a ChildWorkflowFailed
-- error. A sleeping child step is awaited when its wake_at is set (the timeout of the wait,
-- or 9999-12-31 for none); wake_at null means started only (start_workflow, not yet awaited).
-- runs.wake_pending: a child this run awaits ended while the run was running; the run's
-- execution may have read the step before it ended, so the run is due as soon as it parks.
--
-- Everything that ends a run (a worker's write, a cancel, a deadline, a write refused) does
-- so by updating runs.status, so one trigger stores a child's end in its parent, in the
-- transaction that ends the child, whatever ended it.

ALTER TABLE runs
    ADD COLUMN parent_id uuid,
    ADD COLUMN parent_step text,
    ADD COLUMN wake_pending boolean NOT NULL DEFAULT false;

ALTER TABLE steps ADD COLUMN child_id uuid;

-- client.list(parent_id=…), and a cancel finding the children it cancels.
CREATE INDEX runs_parent ON runs (parent_id, created_at DESC) WHERE parent_id IS NOT NULL;

-- Whether run p awaits a child that is still running: then a child's end does not wake it yet
-- (300 children in one gather resume their parent once, when the last one ends).
CREATE FUNCTION stepwise_awaits_children(p uuid) RETURNS boolean
LANGUAGE sql STABLE
RETURN EXISTS (
    SELECT FROM steps AS s
    JOIN runs AS c ON c.id = s.child_id
    WHERE s.run_id = p AND s.status = 'sleeping' AND s.wake_at IS NOT NULL
      AND c.status IN ('pending', 'running', 'sleeping')
);

-- A child ended: store its end in the parent's step, and wake the parent if it awaits it and
-- no other child it awaits still runs. A step whose wait timed out already is left alone: its
-- parent raises (or has raised) ChildWorkflowTimeout there, and a replay must see the same. The parent is locked first: a parent parking on this
-- child (its write holds that lock from its start) either committed before, and this sees its
-- step, or waits for this commit, and then sees the step already resolved. The statements
-- after the lock take snapshots of their own (plpgsql, VOLATILE).
CREATE FUNCTION stepwise_child_ended() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    parent_status text;
    awaited boolean;
BEGIN
    SELECT status INTO parent_status FROM runs WHERE id = NEW.parent_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    UPDATE steps
    SET status = CASE WHEN NEW.status = 'succeeded' THEN 'completed' ELSE 'failed' END,
        output = CASE WHEN NEW.status = 'succeeded' THEN NEW.output END,
        error = CASE WHEN NEW.status = 'succeeded' THEN NULL ELSE json_build_object(
            'type', 'ChildWorkflowFailed',
            'message', 'child run ' || NEW.id || ' of workflow ' || NEW.workflow || ' '
                || CASE WHEN NEW.status = 'canceled' THEN 'was canceled'
                    ELSE 'failed: ' || coalesce(NEW.error ->> 'type', 'Error') || ': '
                        || coalesce(NEW.error ->> 'message', '') END,
            'child_id', NEW.id,
            'workflow', NEW.workflow,
            'status', NEW.status,
            'error', NEW.error
        ) END,
        finished_at = now()
    WHERE run_id = NEW.parent_id AND key = NEW.parent_step AND child_id = NEW.id
      AND status = 'sleeping' AND (wake_at IS NULL OR wake_at > now())
    RETURNING wake_at IS NOT NULL INTO awaited;
    IF NOT FOUND THEN
        RETURN NULL;  -- resolved already (the parent was canceled), or its wait timed out
    END IF;
    IF parent_status = 'running' THEN
        UPDATE runs SET wake_pending = true WHERE id = NEW.parent_id;
    ELSIF parent_status = 'sleeping' AND awaited
        AND NOT stepwise_awaits_children(NEW.parent_id) THEN
        UPDATE runs SET available_at = now(), updated_at = now()
        WHERE id = NEW.parent_id AND available_at > now();
        PERFORM pg_notify(stepwise_channel('work'), '');
    END IF;
    PERFORM pg_notify(stepwise_channel('runs'), NEW.parent_id::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER runs_child_ended AFTER UPDATE OF status ON runs
FOR EACH ROW WHEN (
    NEW.parent_id IS NOT NULL
    AND OLD.status IN ('pending', 'running', 'sleeping')
    AND NEW.status IN ('succeeded', 'failed', 'canceled')
)
EXECUTE FUNCTION stepwise_child_ended();

-- A run leaves 'running' while wake_pending: it parks due at once if no child it awaits still
-- runs (its replay then reads the results it missed); the flag is spent either way.
CREATE FUNCTION stepwise_wake_pending() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    NEW.wake_pending := false;
    IF NEW.status = 'sleeping' AND NOT stepwise_awaits_children(NEW.id) THEN
        NEW.available_at := least(NEW.available_at, now());
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER runs_wake_pending BEFORE UPDATE OF status ON runs
FOR EACH ROW WHEN (OLD.status = 'running' AND NEW.status <> 'running' AND OLD.wake_pending)
EXECUTE FUNCTION stepwise_wake_pending();

-- A canceled run cancels its unfinished children, with their steps in flight; their own
-- children follow through this same trigger.
CREATE FUNCTION stepwise_cancel_children() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    child uuid;
BEGIN
    FOR child IN
        UPDATE runs
        SET status = 'canceled', finished_at = now(), updated_at = now(),
            lease_token = NULL, lease_owner = NULL
        WHERE parent_id = NEW.id AND status IN ('pending', 'running', 'sleeping')
        RETURNING id
    LOOP
        UPDATE steps SET status = 'canceled', finished_at = now()
        WHERE run_id = child AND status IN ('running', 'sleeping');
        PERFORM pg_notify(stepwise_channel('runs'), child::text);
    END LOOP;
    RETURN NULL;
END;
$$;

CREATE TRIGGER runs_cancel_children AFTER UPDATE OF status ON runs
FOR EACH ROW WHEN (
    NEW.status = 'canceled' AND OLD.status IN ('pending', 'running', 'sleeping')
)
EXECUTE FUNCTION stepwise_cancel_children();
