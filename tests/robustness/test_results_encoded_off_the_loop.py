"""A sync step's result is encoded (and size-checked) in the step's own thread, not on the
event loop: encoding a large result takes as long as it takes (300 MB: about 0.75 s), and on
the loop it would stall every other run of the worker, long enough for leases to lapse.

The proof needs no timing: the result's serializer blocks until a sibling async step has run
on the loop. Encoded on the loop, the serializer would wait for the loop it blocks, and give up.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from pydantic import BaseModel, model_serializer

from stepwise import RunStatus, workflow
from tests.conftest import Engine

PATIENCE = 10.0
"""How long the serializer waits for the loop to turn: far longer than a turn takes."""


async def test_a_sync_steps_result_is_encoded_while_the_loop_keeps_turning(
    engine: Engine,
) -> None:
    encoding, loop_turned = threading.Event(), threading.Event()

    class Heavy(BaseModel):
        """A result whose encoding lasts until the loop has turned (or ``PATIENCE`` passed)."""

        @model_serializer
        def _dump(self) -> dict[str, Any]:
            encoding.set()
            return {"loop_turned": loop_turned.wait(PATIENCE)}

    async def sibling() -> str:
        while not encoding.is_set():
            await asyncio.sleep(0.01)
        loop_turned.set()
        return "ran while the result was encoded"

    @workflow("encoded-off-the-loop", registry=engine.registry)
    async def flow(ctx: Any) -> list[Any]:
        return list(
            await asyncio.gather(ctx.step.run("heavy", Heavy), ctx.step.run("sibling", sibling))
        )

    run = await engine.run(flow)
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.output == [{"loop_turned": True}, "ran while the result was encoded"]
