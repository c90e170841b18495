"""The Argo comparison's workload as a stepwise workflow: the seed's shape, three parallel no-op
steps and then a final one (the Argo side runs each as a container; see ``bench/argo.py``).
The benchmark mounts this file into the chart's workers and lists it in ``worker.apps``."""

from __future__ import annotations

import asyncio
from typing import Any

from stepwise import workflow

WORKFLOW = "argo-shape"


def noop() -> None:
    """A step that does nothing, like the Argo side's ``true``."""


@workflow(WORKFLOW)
async def argo_shape(ctx: Any) -> None:
    await asyncio.gather(*(ctx.step.run(f"step-{i}", noop) for i in range(3)))
    await ctx.step.run("final", noop)
