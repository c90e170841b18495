"""The workflow the end-to-end tests run on the worker pods.

Parallel steps that sleep for the given durations. Every execution of a step leaves a file in
``$E2E_MARKS/<run id>/`` (``<step>.<process>.<nonce>.started``, then ``.done``; the process is
``<pod name>-<random>``, new for every container start), so the test counts executions and
sees which process ran them, independently of what the database says. On the test node the
directory is a hostPath volume that the test reads.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from stepwise import workflow

PROCESS = f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


def _slow(run_id: str, name: str, seconds: float) -> float:
    marks = Path(os.environ["E2E_MARKS"]) / run_id
    marks.mkdir(exist_ok=True)
    stem = f"{name}.{PROCESS}.{uuid.uuid4().hex[:8]}"
    (marks / f"{stem}.started").touch()
    time.sleep(seconds)
    (marks / f"{stem}.done").touch()
    return seconds


@workflow("e2e-parallel")
async def parallel(ctx: Any) -> float:
    durations: list[float] = ctx.input["durations"]
    results: list[float] = await asyncio.gather(
        *(
            ctx.step.run(f"slow-{i}", lambda i=i, s=s: _slow(ctx.run_id, f"slow-{i}", s))
            for i, s in enumerate(durations)
        )
    )
    return sum(results)
