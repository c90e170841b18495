"""One measured case of the scale suite, in its own process (``python -m bench.scale_runner``).

``queue``: enqueue N runs of the 4-step sequential shape with ``Client.start_many`` (batches
of ``--batch``) and no worker up, then drain them with one in-process worker.
``long``: one ``scale-long`` run; the time each step ran, so the driver sees the cost per step
as the run grows. ``payload``: N ``scale-payload`` runs, drained, with the WAL written meanwhile.
``work``: a worker and nothing else, until SIGTERM (the driver runs several).

Each case but ``work`` prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from typing import Any

import asyncpg

from bench import flows, scale_flows
from bench.pgserver import Q, quote_ident
from bench.stepwise_runner import SCHEMA, serving
from stepwise import Client, Worker
from stepwise.backends import open_backend

POLL_S = 0.25
"""How often the completion COUNT runs: rarely, so it costs the server little at 100,000 runs;
the drain's own times come from the runs' ``finished_at``, not from this poll."""


def _schema_query(name: str) -> str:
    return Q[name].format(schema=quote_ident(SCHEMA))


async def _enqueue(client: Client, workflow: str, inputs: list[Any], batch: int) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(inputs), batch):
        await client.start_many(workflow, inputs[i : i + batch])
    return time.perf_counter() - t0


async def _drain(client: Client, monitor: asyncpg.Connection, runs: int, concurrency: int) -> float:
    """Serve until ``runs`` runs finished; seconds taken. Every run must have succeeded."""
    t0 = time.perf_counter()
    async with serving(client, concurrency):
        while True:
            finished, succeeded = await monitor.fetchrow(_schema_query("stepwise_progress"))
            if finished >= runs:
                break
            await asyncio.sleep(POLL_S)
    if succeeded != runs:
        raise RuntimeError(f"{runs - succeeded} of {runs} runs did not succeed")
    return time.perf_counter() - t0


async def queue(url: str, runs: int, batch: int, concurrency: int) -> dict[str, Any]:
    async with Client(open_backend(url, schema=SCHEMA)) as client:
        enqueue_s = await _enqueue(client, flows.SEQUENTIAL, [None] * runs, batch)
        monitor = await asyncpg.connect(url)
        try:
            drain_s = await _drain(client, monitor, runs, concurrency)
            times = [r[0] for r in await monitor.fetch(_schema_query("stepwise_finish_times"))]
        finally:
            await monitor.close()
    return {"enqueue_s": enqueue_s, "drain_s": drain_s, "finish_times": times}


async def long(url: str, steps: int, sleep_every: int, concurrency: int) -> dict[str, Any]:
    async with Client(open_backend(url, schema=SCHEMA)) as client:
        run = await client.start(scale_flows.LONG, {"steps": steps, "sleep_every": sleep_every})
        t0 = time.perf_counter()
        async with serving(client, concurrency):
            await client.wait(run.id, timeout=3600)
        wall_s = time.perf_counter() - t0
    marks = [scale_flows.MARKS[i] - t0 for i in range(1, steps + 1)]
    return {"wall_s": wall_s, "marks": marks}


async def payload(url: str, size: int, runs: int, concurrency: int) -> dict[str, Any]:
    async with Client(open_backend(url, schema=SCHEMA)) as client:
        await _enqueue(client, scale_flows.PAYLOAD, [{"size": size}] * runs, 1000)
        monitor = await asyncpg.connect(url)
        try:
            wal_start = await monitor.fetchval(Q["current_lsn"])
            drain_s = await _drain(client, monitor, runs, concurrency)
            wal_end = await monitor.fetchval(Q["current_lsn"])
            wal = await monitor.fetchval(Q["wal_bytes_between"], wal_start, wal_end)
        finally:
            await monitor.close()
    return {"drain_s": drain_s, "wal_bytes": wal}


async def work(url: str, concurrency: int) -> None:
    async with Client(open_backend(url, schema=SCHEMA)) as client:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await Worker(client, concurrency=concurrency).run(stop)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale_runner")
    parser.add_argument("case", choices=["queue", "long", "payload", "work"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--sleep-every", type=int, default=0)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--concurrency", type=int, default=100)
    a = parser.parse_args()
    if a.case == "work":
        asyncio.run(work(a.url, a.concurrency))
        return
    cases = {
        "queue": lambda: queue(a.url, a.runs, a.batch, a.concurrency),
        "long": lambda: long(a.url, a.steps, a.sleep_every, a.concurrency),
        "payload": lambda: payload(a.url, a.size, a.runs, a.concurrency),
    }
    print(json.dumps(asyncio.run(cases[a.case]())), flush=True)


if __name__ == "__main__":
    main()
