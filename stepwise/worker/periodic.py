"""The worker's background chores (lease renewal, the deadline sweep) each repeat on a clock
that a stop event interrupts at once; this is that clock, written once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable


async def every(
    interval: float, stop: asyncio.Event, action: Callable[[], Awaitable[None]]
) -> None:
    """Await ``action`` every ``interval`` seconds, the first time one interval in, until
    ``stop`` is set; a stop during the wait ends it without one more call."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        if stop.is_set():
            return
        await action()
