-- Crash loops are counted at claim time (see the Postgres twin of this migration).
-- recoveries: claims in a row that took a run over from an expired lease with no step
-- completed since the claim before; progress_at_claim: completed steps at the last claim.
-- SQLite's claim holds the write lock while it reads the steps, so it already sees every
-- write the fencing accepted: no function is needed here.

ALTER TABLE runs ADD COLUMN recoveries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN progress_at_claim INTEGER NOT NULL DEFAULT 0;
