"""The workflow the chart's end-to-end test runs on its worker pods.

Parallel steps that sleep for the given durations. Every execution of a step leaves a file in
``$E2E_MARKS`` (``<step>.<pid>.<nonce>.started``, then ``.done``), so the test counts
executions and sees which process ran them, independently of what the database says.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

from stepwise import workflow


def _slow(name: str, seconds: float) -> float:
    marks = Path(os.environ["E2E_MARKS"])
    stem = f"{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    (marks / f"{stem}.started").touch()
    time.sleep(seconds)
    (marks / f"{stem}.done").touch()
    return seconds


@workflow("e2e-parallel")
async def parallel(ctx: Any) -> float:
    durations: list[float] = ctx.input["durations"]
    results: list[float] = await asyncio.gather(
        *(
            ctx.step.run(f"slow-{i}", lambda i=i, s=s: _slow(f"slow-{i}", s))
            for i, s in enumerate(durations)
        )
    )
    return sum(results)
