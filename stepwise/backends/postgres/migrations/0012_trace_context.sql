-- Traces: the W3C traceparent ("00-<trace id>-<span id>-<flags>") of the span that started
-- the run (Client.start's, or the step's that started a child run), the parent of every
-- execution's span (core.tracing). Null for a run started without a trace.

ALTER TABLE runs ADD COLUMN traceparent text;
