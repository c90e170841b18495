"""Execute one run in this process with a temporary worker: ``stepwise run`` and tests."""

from __future__ import annotations

import asyncio

from stepwise.client.client import Client, Run
from stepwise.core.events import ExecutionListener
from stepwise.core.registry import Registry
from stepwise.worker.worker import Worker


async def run_to_completion(
    client: Client,
    registry: Registry,
    run_id: str,
    *,
    listener: ExecutionListener | None = None,
    concurrency: int = 10,
    timeout: float | None = None,
) -> Run:
    """Serve ``registry`` on ``client``'s database until run ``run_id`` finished; return it.

    The worker is an ordinary one: it may also pick up other due runs of those workflows. It
    stores payloads up to the client's ``max_payload_bytes``.
    """
    worker = Worker(
        client,
        registry,
        concurrency=concurrency,
        poll_interval=0.2,
        listener=listener,
        schedules=False,
    )
    stop = asyncio.Event()
    serving = asyncio.create_task(worker.run(stop), name="stepwise-inline-worker")
    try:
        return await client.wait_finished(run_id, timeout=timeout)
    finally:
        stop.set()
        await serving
