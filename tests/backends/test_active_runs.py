"""``Backend.active_runs``, what the backlog gauges read: runs not finished, per workflow, by
status, with the due ones apart; one entry per known or registered workflow (zeros included),
one for every other name together; finished runs not counted. On both backends; on Postgres the
plan reads the runs through the claim's partial indexes only, never the finished ones."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from stepwise.backends import open_backend
from stepwise.backends.base import (
    ActiveRuns,
    Backend,
    FinishRun,
    NewRun,
    RunStatus,
    SuspendRun,
    WorkerInfo,
)
from stepwise.backends.sqlfiles import load_queries
from tests.backends.test_conformance import new_run

WORKER = "w-1"
LATER = timedelta(hours=1)


async def _claim(backend: Backend, workflow: str) -> tuple[str, str]:
    """(lease token, run id) of the next run of ``workflow``, claimed."""
    (claimed,) = await backend.claim_runs(WORKER, [workflow], 1, 30.0)
    return claimed.lease_token, claimed.run.id


async def test_counts_by_workflow_and_status(backend: Backend) -> None:
    await backend.register_worker(WorkerInfo(WORKER, "host", ["registered"], 10))
    later = datetime.now(UTC) + LATER
    runs: list[NewRun] = [
        *(new_run("registered") for _ in range(5)),
        new_run("registered", available_at=later),
        new_run("named"),
        new_run("typo-1"),
        new_run("typo-2", available_at=later),
    ]
    for run in runs:
        await backend.create_run(run)
    # Two of "registered" run; one of them sleeps an hour, one ends; one more finishes.
    await _claim(backend, "registered")
    sleeping = await _claim(backend, "registered")
    done = await _claim(backend, "registered")
    await backend.write([SuspendRun(*sleeping, later)])
    await backend.write([FinishRun(*done, RunStatus.SUCCEEDED, json.dumps(1))])

    counts = await backend.active_runs(["named", "idle"])
    assert sorted(counts, key=lambda c: c.workflow or "") == [
        ActiveRuns(None, pending=2, running=0, sleeping=0, due=1),
        ActiveRuns("idle", pending=0, running=0, sleeping=0, due=0),
        ActiveRuns("named", pending=1, running=0, sleeping=0, due=1),
        ActiveRuns("registered", pending=3, running=1, sleeping=1, due=2),
    ]


async def test_nothing_known_and_nothing_left(backend: Backend) -> None:
    assert await backend.active_runs([]) == [ActiveRuns(None, 0, 0, 0, 0)]


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(node for child in plan.get("Plans", []) for node in _nodes(child))]


@pytest.mark.postgres
async def test_postgres_reads_only_the_claims_partial_indexes(postgres_url: str) -> None:
    """With sequential scans priced out, the plan reads the runs through the claim's partial
    indexes and nothing else: the query's WHERE clauses match their predicates (one IN over the
    three statuses would match neither, and read the whole table)."""
    migrated = open_backend(postgres_url)
    await migrated.open()
    await migrated.close()
    sql = load_queries("stepwise.backends.postgres")["active_runs"]
    conn = await asyncpg.connect(postgres_url, server_settings={"search_path": "stepwise"})
    try:
        await conn.execute("SET enable_seqscan = off")
        [row] = await conn.fetch(f"EXPLAIN (FORMAT JSON) {sql}", ["named"])
        plan = json.loads(row[0])[0]["Plan"]
    finally:
        await conn.close()
    nodes = _nodes(plan)
    scans = [n["Node Type"] for n in nodes if n.get("Relation Name") == "runs"]
    assert scans, plan
    assert "Seq Scan" not in scans, scans
    indexes = {n["Index Name"] for n in nodes if "Index Name" in n}
    assert indexes == {"runs_claimable", "runs_leased"}, indexes
