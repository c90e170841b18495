"""A completed step never runs again for its run; replay returns the stored result, after a
JSON round trip, so replay sees exactly what the first run saw: the type the step function
declares, or plain JSON values when it declares none.

Replay is forced with a durable sleep: the run is put aside and executed again from the top.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from pydantic import BaseModel

from stepwise import Registry, RunStatus, workflow
from tests.conftest import Engine


class Money(BaseModel):
    amount: int
    currency: str


async def test_completed_steps_do_not_run_again_on_replay(engine: Engine) -> None:
    calls: Counter[str] = Counter()
    seen: list[Any] = []

    def charge() -> tuple[int, str]:
        calls["charge"] += 1
        return (100, "EUR")  # a tuple: stored as a JSON list, given back as declared

    def untyped():
        calls["untyped"] += 1
        return (100, "EUR")  # nothing declared: the workflow gets the JSON list

    def quote() -> Money:
        calls["quote"] += 1
        return Money(amount=5, currency="EUR")

    @workflow("replayed", registry=Registry())
    async def replayed(ctx: Any) -> dict[str, Any]:
        charged, quoted, plain = await asyncio.gather(
            ctx.step.run("charge", charge),
            ctx.step.run("quote", quote),
            ctx.step.run("untyped", untyped),
        )
        seen.append((charged, quoted, plain))
        await ctx.step.sleep("pause", 0.2)
        return {"charged": charged, "quoted": quoted, "plain": plain}

    run = await engine.run(replayed)
    assert run.status is RunStatus.SUCCEEDED
    assert calls == {"charge": 1, "quote": 1, "untyped": 1}
    # Two executions (before and after the sleep) saw identical values.
    assert seen == [((100, "EUR"), Money(amount=5, currency="EUR"), [100, "EUR"])] * 2
    assert run.output == {
        "charged": [100, "EUR"],
        "quoted": {"amount": 5, "currency": "EUR"},
        "plain": [100, "EUR"],
    }
    assert run.claims == 2


async def test_non_json_result_fails_the_step_with_its_name(engine: Engine) -> None:
    @workflow("bad-result", registry=Registry())
    async def bad_result(ctx: Any) -> Any:
        return await ctx.step.run("make-socket", lambda: object())

    run = await engine.run(bad_result)
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error["type"] == "StepResultError"
    assert "make-socket" in run.error["message"]
    assert "JSON" in run.error["message"]
