"""One measured stepwise run, in its own process (``python -m bench.stepwise_runner``).

``throughput``: enqueue N runs through the ``Client`` with no worker up, then start one
in-process ``Worker(concurrency=C)`` and poll a COUNT every 10 ms on a separate connection
until all N finished: the same shape and the same completion check as the peers' runners.

Every database call is counted and timed (``bench.calls``): round trips per workflow.
``--cprofile FILE`` profiles the processing phase alone (the worker's side of the run).

``latency``: one in-process worker, idle between runs; one run at a time, timed from
``client.start`` to ``client.wait`` returning the output (the client follows the run through
LISTEN/NOTIFY, as an application would).

Prints one JSON line; the driver reads the database side from the tables afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg

from bench import flows
from bench.calls import CountingBackend
from bench.pgserver import Q, quote_ident
from stepwise import Client, Worker
from stepwise.backends import open_backend
from stepwise.backends.postgres.backend import POOL_SIZE

SCHEMA = "stepwise"


@contextlib.asynccontextmanager
async def serving(client: Client, concurrency: int) -> AsyncIterator[Worker]:
    """A worker sharing the client's backend (one backend per process), stopped on exit."""
    worker = Worker(client, concurrency=concurrency)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker
    finally:
        stop.set()
        await task


async def throughput(
    url: str, workflow: str, runs: int, concurrency: int, *, cprofile: Path | None = None
) -> dict[str, Any]:
    progress = Q["stepwise_progress"].format(schema=quote_ident(SCHEMA))
    backend = CountingBackend(open_backend(url, schema=SCHEMA))
    async with Client(backend) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(client.start(workflow, None) for _ in range(runs)))
        enqueue_s = time.perf_counter() - t0
        enqueue_calls = backend.summary(runs)
        backend.reset()
        monitor = await asyncpg.connect(url)
        try:
            wal_start = await monitor.fetchval(Q["current_lsn"])
            profiler = cProfile.Profile() if cprofile else None
            if profiler is not None:
                profiler.enable()
            start_epoch, t0, cpu0 = time.time(), time.perf_counter(), time.process_time()
            async with serving(client, concurrency) as worker:
                while True:
                    finished, succeeded = await monitor.fetchrow(progress)
                    if finished >= runs:
                        break
                    await asyncio.sleep(0.01)
                process_s = time.perf_counter() - t0
                process_cpu_s = time.process_time() - cpu0
                if profiler is not None:
                    profiler.disable()
                    profiler.dump_stats(str(cprofile))
                wal_end = await monitor.fetchval(Q["current_lsn"])
                batches, ops = worker.journal.batches, worker.journal.ops_written
        finally:
            await monitor.close()
    if succeeded != runs:
        raise RuntimeError(f"{runs - succeeded} of {runs} runs did not succeed")
    return {
        "enqueue_ms": round(enqueue_s * 1000),
        "process_ms": round(process_s * 1000),
        "process_cpu_ms": round(process_cpu_s * 1000),
        "process_start_epoch": start_epoch,
        "wal_start": wal_start,
        "wal_end": wal_end,
        "pool_size": POOL_SIZE,
        "journal_batches": batches,
        "journal_ops": ops,
        "enqueue_calls": enqueue_calls,
        "process_calls": backend.summary(runs),
    }


async def latency(url: str, runs: int, warmup: int, concurrency: int) -> dict[str, Any]:
    async with Client.connect(url, schema=SCHEMA) as client, serving(client, concurrency):
        timings: list[float] = []
        for i in range(warmup + runs):
            t0 = time.perf_counter()
            run = await client.start(flows.LATENCY, None)
            await client.wait(run.id, timeout=30)
            if i >= warmup:
                timings.append((time.perf_counter() - t0) * 1000)
    return {"warmup": warmup, "wait_ms": timings}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stepwise_runner")
    sub = parser.add_subparsers(dest="suite", required=True)
    tp = sub.add_parser("throughput")
    tp.add_argument("--url", required=True)
    tp.add_argument("--workflow", default=flows.SEQUENTIAL, choices=sorted(flows.STEPS))
    tp.add_argument("--runs", type=int, default=1000)
    tp.add_argument("--concurrency", type=int, default=100)
    tp.add_argument(
        "--cprofile", type=Path, default=None, help="cProfile the processing phase to this file"
    )
    lat = sub.add_parser("latency")
    lat.add_argument("--url", required=True)
    lat.add_argument("--runs", type=int, default=200)
    lat.add_argument("--warmup", type=int, default=10)
    lat.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()
    if args.suite == "throughput":
        result = asyncio.run(
            throughput(args.url, args.workflow, args.runs, args.concurrency, cprofile=args.cprofile)
        )
    else:
        result = asyncio.run(latency(args.url, args.runs, args.warmup, args.concurrency))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
