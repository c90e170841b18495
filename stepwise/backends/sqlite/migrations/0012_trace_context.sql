-- Traces: the W3C traceparent of the span that started the run (see the Postgres twin of this
-- migration).

ALTER TABLE runs ADD COLUMN traceparent TEXT;
