"""Step names are memo keys. A name repeated within one execution is auto-indexed in call order
(``name``, ``name:1``, ``name:2``); keys are fixed when ``ctx.step.run`` is called, never by the
order in which steps finish. Names chosen at run time work in loops and batches."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from stepwise import Registry, RunStatus, StepNameError, workflow
from stepwise.core.steps import MemoKeys
from tests.conftest import Engine


def test_repeated_names_are_indexed_in_call_order() -> None:
    keys = MemoKeys()
    assert [keys.next("a"), keys.next("a"), keys.next("b"), keys.next("a")] == [
        "a",
        "a:1",
        "b",
        "a:2",
    ]


def test_an_explicit_indexed_name_is_never_reused() -> None:
    keys = MemoKeys()
    assert [keys.next("a:1"), keys.next("a"), keys.next("a")] == ["a:1", "a", "a:2"]


@pytest.mark.parametrize("bad", ["", "   ", 42, None, b"bytes"])
def test_a_step_name_must_be_a_non_empty_string(bad: object) -> None:
    with pytest.raises(StepNameError, match="non-empty string"):
        MemoKeys().next(bad)


async def test_keys_follow_call_order_not_finish_order_across_replays(engine: Engine) -> None:
    calls: Counter[str] = Counter()

    def slow_then_fast(delay: float, value: str) -> Any:
        async def step() -> str:
            calls[value] += 1
            await asyncio.sleep(delay)
            return value

        return step

    @workflow("repeated-names", registry=Registry())
    async def repeated(ctx: Any) -> list[str]:
        # The first call finishes last; it must still own the key "fetch".
        results = await asyncio.gather(
            ctx.step.run("fetch", slow_then_fast(0.2, "first")),
            ctx.step.run("fetch", slow_then_fast(0.0, "second")),
            ctx.step.run("fetch", slow_then_fast(0.1, "third")),
        )
        await ctx.step.sleep("pause", 0.1)  # forces a replay on a fresh execution
        return list(results)

    run = await engine.run(repeated)
    assert run.status is RunStatus.SUCCEEDED
    assert run.output == ["first", "second", "third"]
    assert calls == {"first": 1, "second": 1, "third": 1}
    stored = {s.key: s.output for s in await engine.client.steps(run.id)}
    assert stored["fetch"] == "first"
    assert stored["fetch:1"] == "second"
    assert stored["fetch:2"] == "third"


async def test_names_chosen_at_run_time_in_loops_and_batches(engine: Engine) -> None:
    @workflow("batch", registry=Registry())
    async def batch(ctx: Any) -> int:
        items = await ctx.step.run("fetch-items", lambda: [{"id": i} for i in range(23)])
        total = 0
        for start in range(0, len(items), 10):
            chunk = items[start : start + 10]
            done = await asyncio.gather(
                *(ctx.step.run(f"process-{it['id']}", lambda it=it: it["id"]) for it in chunk)
            )
            total += sum(done)
        return total

    run = await engine.run(batch, None)
    assert run.output == sum(range(23))
    keys = {s.key for s in await engine.client.steps(run.id)}
    assert keys == {"fetch-items"} | {f"process-{i}" for i in range(23)}


async def test_a_non_string_step_name_fails_the_run_naming_it(engine: Engine) -> None:
    @workflow("bad-name", registry=Registry())
    async def bad_name(ctx: Any) -> None:
        await ctx.step.run(123, lambda: 1)

    run = await engine.run(bad_name)
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error["type"] == "StepNameError"
    assert "123" in run.error["message"]
