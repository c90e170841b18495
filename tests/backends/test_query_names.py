"""Both dialects speak the same named queries, so a rule changed in one is looked for in the other.

A name may differ only for a reason written here: Postgres does some calls in ONE statement
(its measured lead: one round trip per write batch and per claim) where SQLite, without
server-side functions, runs the same steps as several statements under ``BEGIN IMMEDIATE``;
and some plumbing exists in one dialect only.
"""

from __future__ import annotations

from stepwise.backends.sqlfiles import load_queries

SPLIT_IN_SQLITE = {
    # stepwise_write (migration 0013) fences and applies a whole batch; SQLite fences with
    # fence_ops (the same rule, the same SQL shape) and runs the statement named by each op.
    "write": {
        "fence_ops", "step_started", "step_finished", "step_sleeping", "finish_run",
        "suspend_run", "release_run", "retry_run", "delete_failed_steps", "log_line",
    },
    "claim_runs": {"claim_candidates", "claim_run", "runs_by_ids", "steps_of_runs"},
    "heartbeat": {"heartbeat_runs", "heartbeat_worker"},
    "create_run": {"insert_run", "run_by_idempotency_key"},
    "create_runs": {"insert_run", "run_by_idempotency_key"},  # once per run, one transaction
    "fire_schedule": {"advance_schedule", "insert_scheduled_run"},
    "send_signal": {"insert_signal", "signal_by_idempotency_key", "signal_awaited"},
    "receive_signal": {"completed_step", "deliver_signal", "store_wait"},
    "start_child": {"lock_held_run", "child_of_step", "insert_child", "insert_child_step"},
    "await_child": {"lock_held_run", "await_child", "step_of_run"},
    # The migrations' lock: an advisory lock in Postgres, the write lock in SQLite.
    "lock_migrations": {"begin_immediate"},
}  # fmt: skip
"""Postgres name → the SQLite names that do its work together."""

POSTGRES_ONLY = {"channels", "ping", "create_schema", "schema_exists", "lock_descendants"}
"""LISTEN/NOTIFY (the channels and the listener's probe), the schema that holds the tables
(whether it does, for commands that must not create it), and a cancel's lock order (SQLite has
one writer at a time, so nothing to order)."""

SQLITE_ONLY = {"configure_connection"}
"""The pragmas every SQLite connection sets (journal mode, syncing, foreign keys)."""


def test_both_dialects_define_the_same_query_names() -> None:
    postgres = set(load_queries("stepwise.backends.postgres"))
    sqlite = set(load_queries("stepwise.backends.sqlite"))
    expected = postgres - POSTGRES_ONLY - set(SPLIT_IN_SQLITE)
    for parts in SPLIT_IN_SQLITE.values():
        expected |= parts
    assert sqlite - SQLITE_ONLY == expected
    assert set(SPLIT_IN_SQLITE) | POSTGRES_ONLY <= postgres
    assert sqlite >= SQLITE_ONLY
