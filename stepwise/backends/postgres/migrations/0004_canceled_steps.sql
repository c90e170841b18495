-- A step can end 'canceled': the attempt that was in flight (running, or sleeping) when its run
-- was canceled or failed by its deadline. Without it, such a step stayed 'running' forever
-- inside a finished run.

ALTER TABLE steps DROP CONSTRAINT steps_status_check;
ALTER TABLE steps ADD CONSTRAINT steps_status_check
    CHECK (status IN ('running', 'sleeping', 'completed', 'failed', 'canceled'));
