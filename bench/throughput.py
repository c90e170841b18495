"""Throughput side by side: N runs x 4 no-op steps, worker concurrency C, one Postgres.

Every system runs the same shape (the Node peer's published benchmark): enqueue N runs with no
worker up, start one worker with concurrency C, wait until all N finished (a COUNT every
10 ms). The systems run interleaved, A B C A B C..., for several rounds, each on a fresh
database after a CHECKPOINT, so a slow minute on this shared machine hits every system alike.

Two timings per run: database side, from the first claim to the last finish as stored in the
system's own tables (the fair one: no poll grid, no process start-up), and end to end, from the
worker's start to the moment the COUNT saw all N. Commits per workflow come from the COMMIT
records in the WAL of the processing phase; ``xact_commit`` (which also counts read-only
transactions) and CPU seconds are kept too.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bench import flows
from bench.measure import measured_run, median, ratio
from bench.peers import Peers
from bench.pgserver import BenchServer, Q, quote_ident

REPO = Path(__file__).resolve().parent.parent
STEPS = 4
SHAPES = ("sequential", "parallel")


@dataclass(frozen=True, slots=True)
class Setup:
    peers: Peers
    runs: int
    concurrency: int


Command = tuple[list[str], Path, dict[str, str]]


@dataclass(frozen=True, slots=True)
class System:
    name: str
    label: str
    description: str
    database: str
    span_query: str
    shapes: tuple[str, ...]
    command: Callable[[Setup, str, str], Command]
    """(setup, shape, database URL) -> argv, cwd, extra environment."""


def _stepwise(setup: Setup, shape: str, url: str) -> Command:
    workflow = flows.SEQUENTIAL if shape == "sequential" else flows.PARALLEL
    argv = [
        sys.executable, "-m", "bench.stepwise_runner", "throughput", "--url", url,
        "--workflow", workflow, "--runs", str(setup.runs),
        "--concurrency", str(setup.concurrency),
    ]  # fmt: skip
    return argv, REPO, {}


def _node(setup: Setup, shape: str, url: str) -> Command:
    env = {
        "DATABASE_URL": url,
        "RUNS": str(setup.runs),
        "CONCURRENCY": str(setup.concurrency),
        "SHAPE": shape,
    }
    return ["npx", "tsx", "throughput.ts"], setup.peers.node_project, env


def _python_peer(style: str, poll: float) -> Callable[[Setup, str, str], Command]:
    def command(setup: Setup, shape: str, url: str) -> Command:
        queries = {name: Q[name] for name in ("current_lsn", "dbos_progress")}
        argv = [
            str(setup.peers.python), "-m", "bench.dbos_runner", "--url", url,
            "--queries", json.dumps(queries), "--shape", shape, "--style", style,
            "--poll", str(poll), "--runs", str(setup.runs),
            "--concurrency", str(setup.concurrency),
        ]  # fmt: skip
        return argv, REPO, {}

    return command


SYSTEMS = {
    s.name: s
    for s in (
        System(
            "stepwise", "stepwise", "stepwise (this tree), Postgres backend, async no-op steps",
            "bench_stepwise", "stepwise_span", SHAPES, _stepwise,
        ),
        System(
            "openworkflow", "OpenWorkflow 0.10.1",
            "OpenWorkflow 0.10.1 (Node), Postgres backend, pool of 10",
            "bench_openworkflow", "openworkflow_span", SHAPES, _node,
        ),
        System(
            "dbos", "DBOS 3.4.0, defaults",
            "DBOS Transact 3.4.0, queue, defaults (poll 1 s), async workflow",
            "bench_dbos", "dbos_span", SHAPES, _python_peer("async", 1.0),
        ),
        System(
            "dbos-tuned", "DBOS 3.4.0, tuned",
            "DBOS Transact 3.4.0, queue, poll 0.01 s, sync workflow (its best)",
            "bench_dbos", "dbos_span", ("sequential",), _python_peer("sync", 0.01),
        ),
    )
}  # fmt: skip


async def _span(pg: BenchServer, system: System) -> tuple[int, float, float, int]:
    conn = await asyncpg.connect(pg.url(system.database))
    try:
        sql = Q[system.span_query].format(schema=quote_ident("stepwise"))
        row = await conn.fetchrow(sql)
    finally:
        await conn.close()
    assert row is not None
    return int(row[0]), float(row[1]), float(row[2]), int(row[3])


async def one_run(pg: BenchServer, setup: Setup, system: System, shape: str) -> dict[str, Any]:
    argv, cwd, env = system.command(setup, shape, pg.url(system.database))
    r = await measured_run(pg, system.database, argv, cwd=cwd, env=env)
    completed, first_claim, last_finish, step_rows = await _span(pg, system)
    n = setup.runs
    db_span_s = last_finish - first_claim
    commits = r.get("wal_commit_records")
    return {
        "system": system.name,
        "shape": shape,
        "completed": completed,
        "step_rows": step_rows,
        "db_span_ms": round(db_span_s * 1000),
        "db_workflows_per_s": round(n / db_span_s, 1),
        "db_steps_per_s": round(n * STEPS / db_span_s, 1),
        "e2e_workflows_per_s": round(n / (r["process_ms"] / 1000), 1),
        "e2e_steps_per_s": round(n * STEPS / (r["process_ms"] / 1000), 1),
        "first_claim_after_ms": round((first_claim - r["process_start_epoch"]) * 1000),
        "commits_per_workflow": round(commits / n, 2) if commits is not None else None,
        "round_trips_per_workflow": _round_trips(r, n),
        "xact_commit_per_workflow": round(r["xact_commit"] / n, 2),
        "wal_bytes_per_workflow": round(r["wal_bytes"] / n) if "wal_bytes" in r else None,
        "runner_cpu_ms_per_workflow": round(r["runner_cpu_s"] * 1000 / n, 2),
        "server_cpu_ms_per_workflow": round(r["server_cpu_s"] * 1000 / n, 2),
        **r,
    }


def _round_trips(r: dict[str, Any], runs: int) -> float | None:
    """Database calls of the processing phase per workflow (counted by stepwise's runner)."""
    calls: dict[str, dict[str, Any]] | None = r.get("process_calls")
    if not calls:
        return None
    total = sum(int(c["calls"]) for c in calls.values())
    return round(total / runs, 3)


def summarize(runs: Sequence[dict[str, Any]], systems: Sequence[str]) -> dict[str, Any]:
    fields = (
        "db_workflows_per_s", "db_steps_per_s", "e2e_workflows_per_s", "e2e_steps_per_s",
        "commits_per_workflow", "round_trips_per_workflow", "xact_commit_per_workflow",
        "wal_bytes_per_workflow", "runner_cpu_ms_per_workflow", "server_cpu_ms_per_workflow",
        "enqueue_ms", "first_claim_after_ms",
    )  # fmt: skip
    per_system: dict[str, dict[str, Any]] = {}
    for name in systems:
        mine = [r for r in runs if r["system"] == name]
        if mine:
            per_system[name] = {
                "rounds": len(mine),
                "db_workflows_per_s_each": [r["db_workflows_per_s"] for r in mine],
                **{f"median_{f}": median([r[f] for r in mine]) for f in fields},
            }
    ratios: dict[str, Any] = {}
    ours = per_system.get("stepwise")
    for name, theirs in per_system.items():
        if name == "stepwise" or ours is None:
            continue
        same_round = [
            ratio(a["db_workflows_per_s"], b["db_workflows_per_s"])
            for a in runs
            for b in runs
            if a["system"] == "stepwise" and b["system"] == name and a["round"] == b["round"]
        ]
        ratios[f"stepwise/{name}"] = {
            "db_workflows_per_s": ratio(
                ours["median_db_workflows_per_s"], theirs["median_db_workflows_per_s"]
            ),
            "e2e_workflows_per_s": ratio(
                ours["median_e2e_workflows_per_s"], theirs["median_e2e_workflows_per_s"]
            ),
            "db_workflows_per_s_each_round": same_round,
            "median_of_rounds": median([r for r in same_round if r is not None]),
        }
    return {"systems": per_system, "ratios": ratios}


async def run(
    pg: BenchServer,
    setup: Setup,
    *,
    shapes: Sequence[str],
    systems: Sequence[str],
    rounds: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "runs": setup.runs,
        "steps_per_run": STEPS,
        "concurrency": setup.concurrency,
        "rounds": rounds,
        "systems": {name: SYSTEMS[name].description for name in systems},
        "labels": {name: SYSTEMS[name].label for name in systems},
    }
    for shape in shapes:
        chosen = [SYSTEMS[n] for n in systems if shape in SYSTEMS[n].shapes]
        runs: list[dict[str, Any]] = []
        for round_no in range(1, rounds + 1):
            for system in chosen:
                r = await one_run(pg, setup, system, shape)
                r["round"] = round_no
                runs.append(r)
                log(
                    f"  {shape:10} round {round_no} {system.name:13} "
                    f"db {r['db_workflows_per_s']:7.1f} wf/s  e2e {r['e2e_workflows_per_s']:7.1f}"
                    f" wf/s  {r['commits_per_workflow']} commits/wf  load {r['load_average'][0]}"
                )
        result[shape] = {"runs": runs, **summarize(runs, [s.name for s in chosen])}
    return result
