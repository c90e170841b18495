"""The scale suite: how cost grows with the work (``python -m bench --only scale``).

- queue: N runs of the 4-step shape enqueued with ``Client.start_many``, then drained by one
  worker; enqueue and drain rates per depth, and the drain rate of the last 10 % of a deep
  queue (is the last run as cheap as the first?).
- long: one run of many sequential steps, plain and with a durable ``sleep(0)`` every
  ``sleep_every`` steps (each forces a replay from the top); the cost per step by position.
- payload: step results of 1 KB to 1 MB: steps/s and WAL bytes per step.
- workers: 1, 2, 4 worker processes draining one queue on one Postgres.
- kubernetes: ``bench.k8s`` at 5,000 WorkflowRuns.

Each case runs in fresh processes on a fresh database and records the load average it ran
under. ``plot`` draws one PNG per curve (matplotlib, the ``bench`` dependency group).
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bench import k8s, measure, scale_flows
from bench.machine import load_average
from bench.pgserver import BenchServer, Q, quote_ident
from bench.stepwise_runner import SCHEMA
from stepwise import Client

REPO = Path(__file__).resolve().parent.parent
DATABASE = "bench_scale"
RUNNER = [sys.executable, "-m", "bench.scale_runner"]
WINDOW = 100
"""Steps per point of the long-workflow curve (each window holds one replay when sleeping)."""
WORKERS_TIMEOUT = 600.0


@dataclass(frozen=True)
class Sizes:
    """What the suite runs; ``TINY`` is the smoke test's, the defaults are the published ones."""

    queue: Sequence[int] = (1_000, 10_000, 100_000)
    batch: int = 1_000
    long_steps: int = 10_000
    sleep_every: int = 100
    payload_sizes: Sequence[int] = (1_024, 102_400, 1_048_576)
    payload_runs: int = 200
    payload_budget: int = 400 * 1024 * 1024
    """Bytes of step results per payload case at most: fewer runs for the big sizes."""
    workers: Sequence[int] = (1, 2, 4)
    worker_runs: int = 5_000
    concurrency: int = 100
    k8s_runs: int = 5_000
    """0 skips the Kubernetes case."""


TINY = Sizes(
    queue=(50,),
    batch=20,
    long_steps=50,
    sleep_every=10,
    payload_sizes=(1_024, 102_400),
    payload_runs=5,
    workers=(1, 2),
    worker_runs=50,
    concurrency=10,
    k8s_runs=0,
)


def _argv(case: str, url: str, **options: int) -> list[str]:
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
    return [*RUNNER, case, f"--url={url}", *flags]


async def _one(pg: BenchServer, case: str, **options: int) -> dict[str, Any]:
    url = pg.url(DATABASE)
    return await measure.measured_run(pg, DATABASE, _argv(case, url, **options), cwd=REPO)


def _rate(n: float, seconds: float) -> float:
    return round(n / seconds, 1) if seconds > 0 else 0.0


async def queue_depth(pg: BenchServer, sizes: Sizes, log: Callable[[str], None]) -> dict[str, Any]:
    points = []
    for runs in sizes.queue:
        r = await _one(pg, "queue", runs=runs, batch=sizes.batch, concurrency=sizes.concurrency)
        times = r.pop("finish_times")
        tail = max(1, min(runs // 10, len(times) - 1))  # from the finish before the last 10 %
        point = {
            "runs": runs,
            "enqueue_runs_per_s": _rate(runs, r["enqueue_s"]),
            "drain_runs_per_s": _rate(runs, times[-1] - times[0]),
            "drain_last_10pct_runs_per_s": _rate(tail, times[-1] - times[-tail - 1]),
            "drain_wall_s": round(r["drain_s"], 2),
            "load_average": r["load_average"],
            "server_cpu_s": r["server_cpu_s"],
            "runner_cpu_s": r["runner_cpu_s"],
            "wal_bytes": r["wal_bytes_whole_run"],
        }
        log(
            f"  queue {runs}: enqueue {point['enqueue_runs_per_s']}/s, "
            f"drain {point['drain_runs_per_s']}/s (last 10 %: "
            f"{point['drain_last_10pct_runs_per_s']}/s), load {r['load_average']}"
        )
        points.append(point)
    first, last = points[0], points[-1]
    return {
        "workflow": "bench-sequential (4 steps)",
        "points": points,
        "drain_rate_deepest_vs_shallowest": measure.ratio(
            last["drain_runs_per_s"], first["drain_runs_per_s"]
        ),
    }


def _windows(marks: Sequence[float], size: int) -> list[dict[str, float]]:
    """Mean ms per step over consecutive windows of ``size`` steps (step k costs the time since
    step k-1 ran; step 1 has no predecessor and is left out), each labelled by its last step."""
    gaps = [b - a for a, b in itertools.pairwise(marks)]
    return [
        {
            "step": start + 1 + len(gaps[start : start + size]),
            "ms_per_step": round(statistics.fmean(gaps[start : start + size]) * 1e3, 4),
        }
        for start in range(0, len(gaps), size)
    ]


async def long_workflows(
    pg: BenchServer, sizes: Sizes, log: Callable[[str], None]
) -> dict[str, Any]:
    window = min(WINDOW, max(1, sizes.long_steps // 5))
    out: dict[str, Any] = {"steps": sizes.long_steps, "window_steps": window}
    for label, every in (("plain", 0), ("replaying", sizes.sleep_every)):
        r = await _one(pg, "long", steps=sizes.long_steps, sleep_every=every, concurrency=10)
        windows = _windows(r.pop("marks"), window)
        first, last = windows[0]["ms_per_step"], windows[-1]["ms_per_step"]
        out[label] = {
            "sleep_every": every,
            "replays": (sizes.long_steps - 1) // every if every else 0,
            "wall_s": round(r["wall_s"], 2),
            "steps_per_s": _rate(sizes.long_steps, r["wall_s"]),
            "first_window_ms_per_step": first,
            "last_window_ms_per_step": last,
            "last_vs_first": measure.ratio(last, first),
            "windows": windows,
            "load_average": r["load_average"],
            "server_cpu_s": r["server_cpu_s"],
            "runner_cpu_s": r["runner_cpu_s"],
        }
        log(
            f"  long {label}: {sizes.long_steps} steps in {r['wall_s']:.1f}s, per step "
            f"{first:.3f} ms at the start, {last:.3f} ms at the end, load {r['load_average']}"
        )
    return out


async def payloads(pg: BenchServer, sizes: Sizes, log: Callable[[str], None]) -> dict[str, Any]:
    points = []
    per_run = scale_flows.PAYLOAD_STEPS
    for size in sizes.payload_sizes:
        runs = max(2, min(sizes.payload_runs, sizes.payload_budget // (size * per_run)))
        r = await _one(pg, "payload", size=size, runs=runs, concurrency=sizes.concurrency)
        steps = runs * per_run
        point = {
            "result_bytes": size,
            "runs": runs,
            "steps_per_s": _rate(steps, r["drain_s"]),
            "wal_bytes_per_step": round(r["wal_bytes"] / steps),
            "wal_vs_result": round(r["wal_bytes"] / steps / size, 2),
            "load_average": r["load_average"],
            "server_cpu_s": r["server_cpu_s"],
            "runner_cpu_s": r["runner_cpu_s"],
        }
        log(
            f"  payload {size} B: {point['steps_per_s']} steps/s, "
            f"{point['wal_bytes_per_step']} WAL bytes/step, load {r['load_average']}"
        )
        points.append(point)
    return {"steps_per_run": per_run, "points": points}


async def _wait_for(check: Callable[[], Any], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def _drain_with(url: str, processes: int, sizes: Sizes) -> dict[str, Any]:
    """Start ``processes`` workers, wait until all registered, enqueue, time the drain."""
    argv = _argv("work", url, concurrency=sizes.concurrency)
    procs = [await asyncio.create_subprocess_exec(*argv, cwd=REPO) for _ in range(processes)]
    monitor = await asyncpg.connect(url)
    try:

        async def registered() -> bool:
            count = await monitor.fetchval(Q["stepwise_workers"].format(schema=quote_ident(SCHEMA)))
            return bool(count >= processes)

        await _wait_for(registered, f"{processes} workers", 60)
        load = load_average()
        progress = Q["stepwise_progress"].format(schema=quote_ident(SCHEMA))
        t0 = time.perf_counter()
        async with Client.connect(url, schema=SCHEMA) as client:
            for i in range(0, sizes.worker_runs, sizes.batch):
                n = min(sizes.batch, sizes.worker_runs - i)
                await client.start_many("bench-sequential", [None] * n)

        async def drained() -> bool:
            finished, _ = await monitor.fetchrow(progress)
            return bool(finished >= sizes.worker_runs)

        await _wait_for(drained, f"{sizes.worker_runs} runs", WORKERS_TIMEOUT)
        seconds = time.perf_counter() - t0
    finally:
        await monitor.close()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            await proc.wait()
    return {"seconds": seconds, "load_average": load}


async def workers(pg: BenchServer, sizes: Sizes, log: Callable[[str], None]) -> dict[str, Any]:
    points = []
    for n in sizes.workers:
        url = await pg.fresh_database(DATABASE)
        async with Client.connect(url, schema=SCHEMA):
            pass  # the schema exists before the workers race to create it
        r = await _drain_with(url, n, sizes)
        point = {
            "processes": n,
            "runs": sizes.worker_runs,
            "runs_per_s": _rate(sizes.worker_runs, r["seconds"]),
            "load_average": r["load_average"],
        }
        log(f"  {n} worker processes: {point['runs_per_s']} runs/s, load {r['load_average']}")
        points.append(point)
    return {"concurrency_per_process": sizes.concurrency, "points": points}


async def run(
    pg: BenchServer, sizes: Sizes, *, log: Callable[[str], None], images: Path | None = None
) -> dict[str, Any]:
    result: dict[str, Any] = {"sizes": asdict(sizes)}
    cases: dict[str, Callable[[], Any]] = {
        "queue_depth": lambda: queue_depth(pg, sizes, log),
        "long_workflows": lambda: long_workflows(pg, sizes, log),
        "payloads": lambda: payloads(pg, sizes, log),
        "workers": lambda: workers(pg, sizes, log),
    }
    if sizes.k8s_runs:
        cases["kubernetes"] = lambda: k8s.run(pg, sizes.k8s_runs, log=log)
    failed = []
    for name, case in cases.items():
        t0 = time.monotonic()
        try:
            result[name] = await case()
        except Exception as exc:  # the other cases' figures are kept, and the suite fails
            log(f"  !! {name} failed: {exc}")
            result[name] = {"error": str(exc)}
            failed.append(name)
        result[name]["case_seconds"] = round(time.monotonic() - t0, 1)
    if images is not None:
        from bench import scale_plots  # matplotlib only where plots are drawn

        result["images"] = scale_plots.draw(result, images)
    if failed:
        result["failed_cases"] = failed
    return result
