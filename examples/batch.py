"""A batch with step names chosen at run time, all at once and in batches of ten.

stepwise run examples/batch.py process-batch --input '{"count": 25}'
stepwise run examples/batch.py process-in-batches --input '{"count": 25}'
"""

from __future__ import annotations

import asyncio
from typing import Any

from stepwise import workflow


def fetch_items(count: int) -> list[dict[str, int]]:
    return [{"id": i, "value": i * i} for i in range(count)]


def process(item: dict[str, int]) -> int:
    return item["value"] + 1


@workflow("process-batch")
async def process_batch(ctx: Any) -> int:
    items = await ctx.step.run("fetch-items", fetch_items, ctx.input["count"])
    # The item is an argument of the step, bound at the call: a `lambda: process(item)` would
    # see only the loop's last item by the time the step runs.
    results = await asyncio.gather(
        *(ctx.step.run(f"process-{item['id']}", process, item) for item in items)
    )
    return sum(results)


BATCH_SIZE = 10


@workflow("process-in-batches")
async def process_in_batches(ctx: Any) -> int:
    """Limit parallelism (e.g. an external API's rate limit): ten steps at a time."""
    items = await ctx.step.run("fetch-items", fetch_items, ctx.input["count"])
    total = 0
    for start in range(0, len(items), BATCH_SIZE):
        batch = items[start : start + BATCH_SIZE]
        results = await asyncio.gather(
            *(ctx.step.run(f"process-{it['id']}", process, it) for it in batch)
        )
        total += sum(results)
    return total
