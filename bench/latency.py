"""Start -> result latency with an idle worker: a 3-step run, one at a time.

Each system runs its worker and its client in one process; after a warm-up, N runs go one
after the other. Two figures per system: what the client saw (start call to result in hand)
and the database side (the run's ``created_at`` to its ``finished_at``, which leaves out how
the client learns of the end). The Node peer's client polls once per second as shipped, so
its client-side figure is taken with a 5 ms poll of the same call instead, and the shipped
``result()`` is measured on a few runs to show what an application gets by default.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import asyncpg

from bench import flows
from bench.measure import distribution, measured_run, ratio
from bench.peers import Peers
from bench.pgserver import BenchServer, Q, quote_ident
from bench.throughput import REPO

WARMUP = 10
SHIPPED_RUNS = 20


async def _db_latencies_ms(pg: BenchServer, database: str, query: str, *args: Any) -> list[float]:
    conn = await asyncpg.connect(pg.url(database))
    try:
        rows = await conn.fetch(query, *args)
    finally:
        await conn.close()
    return [row[0] * 1000 for row in rows]


async def _stepwise(pg: BenchServer, runs: int) -> dict[str, Any]:
    database = "bench_stepwise"
    argv = [
        sys.executable, "-m", "bench.stepwise_runner", "latency", "--url", pg.url(database),
        "--runs", str(runs), "--warmup", str(WARMUP),
    ]  # fmt: skip
    r = await measured_run(pg, database, argv, cwd=REPO)
    query = Q["stepwise_latencies"].format(schema=quote_ident("stepwise"))
    db = (await _db_latencies_ms(pg, database, query, flows.LATENCY))[WARMUP:]
    return {
        "client": distribution(r["wait_ms"]),
        "client_how": "client.start() to client.wait() returning (LISTEN/NOTIFY)",
        "database": distribution(db),
        "load_average": r["load_average"],
    }


async def _node(pg: BenchServer, peers: Peers, runs: int) -> dict[str, Any]:
    database = "bench_openworkflow"
    env = {
        "DATABASE_URL": pg.url(database),
        "RUNS": str(runs),
        "DEFAULT_RUNS": str(SHIPPED_RUNS),
        "WARMUP": str(WARMUP),
    }
    argv = ["npx", "tsx", "latency.ts"]
    r = await measured_run(pg, database, argv, cwd=peers.node_project, env=env)
    db = await _db_latencies_ms(pg, database, Q["openworkflow_latencies"])
    return {
        "client": distribution(r["poll5ms_ms"]),
        "client_how": "workflow.run() to getWorkflowRun() seeing 'completed', polled every 5 ms",
        "client_shipped": distribution(r["result_ms"]),
        "client_shipped_how": f"handle.result() as shipped (1 s poll), {SHIPPED_RUNS} runs",
        "database": distribution(db[WARMUP : WARMUP + runs]),
        "load_average": r["load_average"],
    }


async def run(
    pg: BenchServer, peers: Peers, runs: int, *, log: Callable[[str], None]
) -> dict[str, Any]:
    ours = await _stepwise(pg, runs)
    log(f"  stepwise      p50 {ours['client']['p50_ms']} ms  p99 {ours['client']['p99_ms']} ms")
    theirs = await _node(pg, peers, runs)
    log(
        f"  openworkflow  p50 {theirs['client']['p50_ms']} ms  p99 {theirs['client']['p99_ms']}"
        f" ms (5 ms poll); shipped result() p50 {theirs['client_shipped']['p50_ms']} ms"
    )
    return {
        "steps_per_run": 3,
        "runs": runs,
        "warmup": WARMUP,
        "systems": {"stepwise": ours, "openworkflow": theirs},
        "ratios": {
            "openworkflow/stepwise p50 (client)": ratio(
                theirs["client"]["p50_ms"], ours["client"]["p50_ms"]
            ),
            "openworkflow/stepwise p50 (database)": ratio(
                theirs["database"]["p50_ms"], ours["database"]["p50_ms"]
            ),
        },
    }
