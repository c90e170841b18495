"""One measured run of one system, taken the same way for every system.

Before: a fresh database for the system, a CHECKPOINT (so no checkpoint lands inside the run),
the counters and the machine's load. Then the system's runner runs as a child process and
prints one JSON line. After: the counters again, once the runner's connections are gone (a
backend hands its counters over when it exits), and the COMMIT records of the WAL window the
runner reported (its processing phase).

Also here: medians, ratios and percentiles, so every suite summarises the same way.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import resource
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.machine import load_average
from bench.pgserver import BenchServer

RUN_TIMEOUT = 600.0
STATS_SETTLE = 1.0
"""Pause after a run so the WAL writer's own counters (pg_stat_wal) are flushed."""


class RunnerFailed(RuntimeError):
    pass


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def run_json(
    argv: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run a runner to completion; its last stdout line that is a JSON object is the result."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RunnerFailed(f"{argv[0]} did not finish within {RUN_TIMEOUT:.0f}s") from None
    text = out.decode(errors="replace")
    lines = [ln for ln in text.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (text + err.decode(errors="replace"))[-4000:]
        raise RunnerFailed(f"{' '.join(argv[:4])}… exited {proc.returncode}:\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


async def measured_run(
    pg: BenchServer,
    database: str,
    argv: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run one system's runner against a fresh ``database`` and return its figures with the
    database's counters (commits, WAL, fsyncs, server CPU) and the runner's CPU."""
    await pg.fresh_database(database)
    await pg.checkpoint()
    load = load_average()
    before = await pg.counters(database)
    cpu0, t0 = _children_cpu(), time.perf_counter()
    result = await run_json(argv, cwd=cwd, env=env)
    wall_s = time.perf_counter() - t0
    runner_cpu = _children_cpu() - cpu0
    await asyncio.sleep(STATS_SETTLE)
    delta = await pg.counters(database) - before
    result.update(
        load_average=load,
        wall_s=round(wall_s, 2),
        runner_cpu_s=round(runner_cpu, 2),
        server_cpu_s=delta.server_cpu_s,
        xact_commit=delta.xact_commit,
        rows_written=delta.tup_written,
        wal_sync=delta.wal_sync,
        wal_bytes_whole_run=delta.wal_bytes,
    )
    if result.get("wal_start") and result.get("wal_end"):
        result.update(pg.wal_between(result["wal_start"], result["wal_end"]))
    return result


# ---- summaries ----
def median(values: Sequence[float]) -> float | None:
    clean = [v for v in values if v is not None and not math.isnan(v)]
    return round(statistics.median(clean), 2) if clean else None


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return round(ordered[rank - 1], 2)


def distribution(values_ms: Sequence[float]) -> dict[str, float | int]:
    return {
        "n": len(values_ms),
        "p50_ms": percentile(values_ms, 50),
        "p90_ms": percentile(values_ms, 90),
        "p99_ms": percentile(values_ms, 99),
        "mean_ms": round(statistics.fmean(values_ms), 2),
        "max_ms": round(max(values_ms), 2),
    }
