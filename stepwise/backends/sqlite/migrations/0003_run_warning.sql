-- A run can carry a warning (see the Postgres twin of this migration): JSON text.

ALTER TABLE runs ADD COLUMN warning TEXT;
