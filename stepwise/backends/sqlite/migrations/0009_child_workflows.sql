-- Child workflows (see the Postgres twin of this migration for the columns and the rules).
-- SQLite has one writer at a time, so no lock is needed between a child's end and its parent
-- parking. Times come from the triggering row (NEW.updated_at, written by Python), so every
-- stored time keeps the fixed-width form. The cancel trigger reaches grandchildren because
-- connections enable recursive_triggers (configure_connection).

ALTER TABLE runs ADD COLUMN parent_id TEXT;

ALTER TABLE runs ADD COLUMN parent_step TEXT;

ALTER TABLE runs ADD COLUMN wake_pending INTEGER NOT NULL DEFAULT 0;

ALTER TABLE steps ADD COLUMN child_id TEXT;

CREATE INDEX runs_parent ON runs (parent_id, created_at DESC) WHERE parent_id IS NOT NULL;

-- A child ended: the parent is flagged if running, woken if it sleeps awaiting this child and
-- no other child it awaits still runs (checked before the step is resolved below), and its
-- step takes the child's end; a step whose wait timed out already is left alone.
CREATE TRIGGER runs_child_ended AFTER UPDATE OF status ON runs
FOR EACH ROW WHEN NEW.parent_id IS NOT NULL
    AND OLD.status IN ('pending', 'running', 'sleeping')
    AND NEW.status IN ('succeeded', 'failed', 'canceled')
BEGIN
    UPDATE runs SET wake_pending = 1
    WHERE id = NEW.parent_id AND status = 'running' AND EXISTS (
        SELECT 1 FROM steps
        WHERE run_id = NEW.parent_id AND key = NEW.parent_step AND child_id = NEW.id
          AND status = 'sleeping' AND (wake_at IS NULL OR wake_at > NEW.updated_at)
    );
    UPDATE runs SET available_at = NEW.updated_at, updated_at = NEW.updated_at
    WHERE id = NEW.parent_id AND status = 'sleeping' AND available_at > NEW.updated_at
      AND EXISTS (
          SELECT 1 FROM steps
          WHERE run_id = NEW.parent_id AND key = NEW.parent_step AND child_id = NEW.id
            AND status = 'sleeping' AND wake_at > NEW.updated_at
      )
      AND NOT EXISTS (
          SELECT 1 FROM steps AS s JOIN runs AS c ON c.id = s.child_id
          WHERE s.run_id = NEW.parent_id AND s.status = 'sleeping' AND s.wake_at IS NOT NULL
            AND c.status IN ('pending', 'running', 'sleeping')
      );
    UPDATE steps
    SET status = CASE WHEN NEW.status = 'succeeded' THEN 'completed' ELSE 'failed' END,
        output = CASE WHEN NEW.status = 'succeeded' THEN NEW.output END,
        error = CASE WHEN NEW.status = 'succeeded' THEN NULL ELSE json_object(
            'type', 'ChildWorkflowFailed',
            'message', 'child run ' || NEW.id || ' of workflow ' || NEW.workflow || ' '
                || CASE WHEN NEW.status = 'canceled' THEN 'was canceled'
                    ELSE 'failed: ' || coalesce(json_extract(NEW.error, '$.type'), 'Error')
                        || ': ' || coalesce(json_extract(NEW.error, '$.message'), '') END,
            'child_id', NEW.id,
            'workflow', NEW.workflow,
            'status', NEW.status,
            'error', json(NEW.error)
        ) END,
        finished_at = NEW.updated_at
    WHERE run_id = NEW.parent_id AND key = NEW.parent_step AND child_id = NEW.id
      AND status = 'sleeping' AND (wake_at IS NULL OR wake_at > NEW.updated_at);
END;

-- A run leaves 'running' while wake_pending: due at once if it parks and no child it awaits
-- still runs; the flag is spent either way.
CREATE TRIGGER runs_wake_pending AFTER UPDATE OF status ON runs
FOR EACH ROW WHEN OLD.status = 'running' AND NEW.status <> 'running' AND OLD.wake_pending
BEGIN
    UPDATE runs
    SET wake_pending = 0,
        available_at = CASE WHEN NEW.status = 'sleeping' AND available_at > NEW.updated_at
            AND NOT EXISTS (
                SELECT 1 FROM steps AS s JOIN runs AS c ON c.id = s.child_id
                WHERE s.run_id = NEW.id AND s.status = 'sleeping' AND s.wake_at IS NOT NULL
                  AND c.status IN ('pending', 'running', 'sleeping')
            ) THEN NEW.updated_at ELSE available_at END
    WHERE id = NEW.id;
END;

-- A canceled run cancels its unfinished children, with their steps in flight.
CREATE TRIGGER runs_cancel_children AFTER UPDATE OF status ON runs
FOR EACH ROW WHEN NEW.status = 'canceled' AND OLD.status IN ('pending', 'running', 'sleeping')
BEGIN
    UPDATE steps SET status = 'canceled', finished_at = NEW.updated_at
    WHERE status IN ('running', 'sleeping') AND run_id IN (
        SELECT id FROM runs
        WHERE parent_id = NEW.id AND status IN ('pending', 'running', 'sleeping')
    );
    UPDATE runs
    SET status = 'canceled', finished_at = NEW.updated_at, updated_at = NEW.updated_at,
        lease_token = NULL, lease_owner = NULL
    WHERE parent_id = NEW.id AND status IN ('pending', 'running', 'sleeping');
END;
