-- A run can carry a warning: a JSON document {"type", "message", …} that the engine stores
-- about a run without failing it (today: its replay diverged from its stored history).
-- It stays on the run once written; the latest warning replaces an earlier one.

ALTER TABLE runs ADD COLUMN warning json;
