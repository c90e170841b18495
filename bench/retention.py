"""Retention on Postgres: prune 100,000 finished runs while a worker keeps claiming.

``python -m bench.retention [--runs N]`` starts a throwaway PostgreSQL (the tests' server),
stores N runs that finished 40 days ago (3 steps each), then measures the claim path (create a
run, claim it, finish it: what a busy worker does) first alone, then while
``Client.prune(older_than=30 days)`` deletes the old runs in its batches. It prints the prune
time and the claim latency distribution of both phases as JSON. Figures are reported, never
asserted; not part of ``python -m bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

SEED = """
INSERT INTO stepwise.runs (id, workflow, status, input, output, attempt, claims, available_at,
                           created_at, started_at, finished_at, updated_at)
SELECT gen_random_uuid(), 'old', 'succeeded', '{}', '"done"', 1, 1, t, t, t, t, t
FROM generate_series(1, $1) AS n, LATERAL (SELECT now() - interval '40 days' AS t) AS ago;
INSERT INTO stepwise.steps (run_id, key, status, output, attempts, started_at, finished_at)
SELECT r.id, 'step-' || k, 'completed', '"x"', 1, r.started_at, r.finished_at
FROM stepwise.runs AS r, generate_series(1, 3) AS k
WHERE r.workflow = 'old';
"""


def _distribution(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "claims": len(ordered),
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[math.ceil(len(ordered) * 0.99) - 1], 2),
        "max_ms": round(ordered[-1], 2),
    }


async def _claiming(client: Any, stop: asyncio.Event, latencies: list[float]) -> None:
    """A worker's claim path, one run at a time: create, claim (timed), finish."""
    from stepwise.backends.base import FinishRun, NewRun, RunStatus

    backend = client.backend
    while not stop.is_set():
        await backend.create_run(NewRun(str(uuid.uuid4()), "live", None, "{}"))
        started = time.perf_counter()
        [claimed] = await backend.claim_runs("bench", ["live"], 1, 30.0)
        latencies.append((time.perf_counter() - started) * 1000)
        op = FinishRun(claimed.lease_token, claimed.run.id, RunStatus.SUCCEEDED, output="1")
        await backend.write([op])


async def measure(url: str, runs: int, baseline_seconds: float) -> dict[str, Any]:
    import asyncpg

    from stepwise import Client

    async with Client.connect(url) as client:
        conn = await asyncpg.connect(url)
        try:
            for statement in SEED.strip().split(";\n"):
                await conn.execute(statement, *([runs] if "$1" in statement else []))
            for table in ("runs", "steps"):
                await conn.execute(f"VACUUM ANALYZE stepwise.{table}")
        finally:
            await conn.close()

        alone: list[float] = []
        stop = asyncio.Event()
        claimer = asyncio.create_task(_claiming(client, stop, alone))
        await asyncio.sleep(baseline_seconds)
        stop.set()
        await claimer

        during: list[float] = []
        stop = asyncio.Event()
        claimer = asyncio.create_task(_claiming(client, stop, during))
        started = time.perf_counter()
        pruned = await client.prune(older_than=timedelta(days=30))
        prune_seconds = time.perf_counter() - started
        stop.set()
        await claimer
    return {
        "finished_runs": runs,
        "steps_per_run": 3,
        "pruned": pruned,
        "prune_seconds": round(prune_seconds, 2),
        "runs_pruned_per_second": round(pruned / prune_seconds),
        "claim_latency_alone": _distribution(alone),
        "claim_latency_during_prune": _distribution(during),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--baseline-seconds", type=float, default=10.0)
    args = parser.parse_args()

    from harness.postgres import PostgresServer, find_bindir

    with tempfile.TemporaryDirectory(prefix="stepwise-bench-retention-") as root:
        server = PostgresServer(find_bindir(), Path(root))
        server.init()
        server.start()
        try:
            server.psql("CREATE DATABASE bench_retention")
            url = server.url("bench_retention")
            result = asyncio.run(measure(url, args.runs, args.baseline_seconds))
        finally:
            server.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
