"""Concurrency limits: at most one charge per customer at a time, across every worker.

``concurrency=1, concurrency_key="customer"``: charges of different customers run side by
side; charges of one customer wait their turn, whichever client started them and whichever
worker is free, and ``stepwise runs show`` says why a waiting run waits. Try it:

    python examples/concurrency_limits.py

It starts eight charges for two customers on a temporary SQLite file, serves them with two
workers in this process, and prints when each charge ran: one customer's charges never
overlap. On Postgres the same decorator holds across every worker process and pod. One
charge, the usual way:

    stepwise run examples/concurrency_limits.py charge-customer \
        --input '{"customer": "acme", "cents": 5}'
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from stepwise import Client, Worker, workflow


async def charge(customer: str, cents: int) -> dict[str, Any]:
    """Stands for a payment API that must never see two charges of one customer at once."""
    started = time.time()
    await asyncio.sleep(0.2)
    return {"customer": customer, "cents": cents, "started": started, "ended": time.time()}


@workflow("charge-customer", concurrency=1, concurrency_key="customer")
async def charge_customer(ctx: Any) -> dict[str, Any]:
    receipt: dict[str, Any] = await ctx.step.run(
        "charge", charge, ctx.input["customer"], ctx.input["cents"]
    )
    return receipt


async def main() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{Path(scratch) / 'stepwise.db'}"
        async with Client.connect(url) as client:
            runs = [
                await client.start("charge-customer", {"customer": customer, "cents": cents})
                for cents, customer in enumerate(["acme", "acme", "acme", "globex"] * 2)
            ]
            stop = asyncio.Event()
            workers = [
                asyncio.create_task(Worker(client, poll_interval=0.05).run(stop)) for _ in range(2)
            ]
            results = [await client.wait(run.id, timeout=60) for run in runs]
            stop.set()
            await asyncio.gather(*workers)
    first = min(r["started"] for r in results)
    for r in sorted(results, key=lambda r: r["started"]):
        start, end = r["started"] - first, r["ended"] - first
        print(f"{r['customer']:>7} {r['cents']:>2} cents: {start:5.2f}s to {end:5.2f}s")
    return results


if __name__ == "__main__":
    asyncio.run(main())
