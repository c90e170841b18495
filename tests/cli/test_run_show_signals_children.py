"""``stepwise runs show`` lists a run's signals (received by which wait, or kept for one) and
the child runs it started, in the readable view and in ``--json``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from harness.workers import Procs
from stepwise import workflow
from stepwise.worker.inline import run_to_completion
from tests.conftest import Engine


async def test_runs_show_lists_signals_and_child_runs(
    engine: Engine, procs: Procs, backend_url: str
) -> None:
    @workflow("signalled-child", registry=engine.registry)
    async def signalled_child(ctx: Any) -> int:
        return int(ctx.input) * 2

    @workflow("signalled-parent", registry=engine.registry)
    async def signalled_parent(ctx: Any) -> Any:
        go = await ctx.step.wait_for_signal("go")
        return await asyncio.gather(
            *(ctx.step.run_workflow(signalled_child, n, name=f"double-{n}") for n in go["n"])
        )

    run = await engine.client.start(signalled_parent)
    await engine.client.signal(run.id, "go", {"n": [1, 2]}, idempotency_key="first")
    await engine.client.signal(run.id, "later", "never waited for")
    await run_to_completion(engine.client, engine.registry, run.id, timeout=30)
    children = sorted(await engine.client.list(parent_id=run.id), key=lambda c: c.parent_step or "")
    assert [c.parent_step for c in children] == ["double-1", "double-2"]

    def show(*args: str) -> str:
        done = procs.cli("runs", "show", run.id, *args, "--database-url", backend_url)
        assert done.returncode == 0, done.stderr
        return done.stdout

    lines = show().splitlines()
    signals = lines[lines.index("SIGNALS") + 1 :]
    assert signals[0].split() == ["#", "NAME", "SENT", "RECEIVED", "BY", "PAYLOAD"]
    assert signals[1].split()[:2] == ["1", "go"]
    assert "  step go  " in signals[1]
    assert signals[1].endswith('{"n": [1, 2]}')
    assert signals[2].split()[:2] == ["2", "later"]
    assert "  kept for a wait  " in signals[2]
    assert signals[2].endswith('"never waited for"')
    kids = lines[lines.index("CHILD RUNS") + 1 :]
    assert kids[0].split() == ["ID", "WORKFLOW", "STATUS", "STEP"]
    assert sorted(row.split() for row in kids[1:3]) == sorted(
        [c.id, "signalled-child", "succeeded", c.parent_step] for c in children
    )

    doc = json.loads(show("--json"))
    assert [
        (s["seq"], s["name"], s["payload"], s["idempotency_key"], s["delivered_to"])
        for s in doc["signals"]
    ] == [(1, "go", {"n": [1, 2]}, "first", "go"), (2, "later", "never waited for", None, None)]
    assert doc["signals"][0]["delivered_at"] is not None
    assert sorted((c["id"], c["parent_step"], c["status"]) for c in doc["children"]) == sorted(
        (c.id, c.parent_step, "succeeded") for c in children
    )
