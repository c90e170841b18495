-- Claims see every write the fencing accepted, and count crash loops.
--
-- recoveries: claims in a row that took a run over from a lease its holder never gave back
-- (the worker died, or stalled past its lease) with no step completed since the claim before.
-- progress_at_claim: how many of the run's steps were completed at its last claim; a claim
-- that finds more resets recoveries. Counting at claim time holds whatever killed the worker.

ALTER TABLE runs
    ADD COLUMN recoveries integer NOT NULL DEFAULT 0,
    ADD COLUMN progress_at_claim integer NOT NULL DEFAULT 0;

-- The stored steps of a run, read with a snapshot of their own: a claim calls this after it
-- locked the run. The claim statement's own snapshot is taken before it locks; a stale
-- holder's step write that commits in between is accepted by the fencing (the run was not
-- yet re-leased), so a claim reading steps with that snapshot would miss a stored step and
-- run it again. A VOLATILE plpgsql function takes a fresh snapshot for each statement: it
-- sees every write committed before the lock, and any later write waits for the lock and is
-- then refused (the token changed). plpgsql also keeps it from being inlined into the caller.
CREATE FUNCTION stepwise_claimed_steps(run uuid) RETURNS SETOF steps
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY SELECT * FROM steps WHERE steps.run_id = run;
END;
$$;
