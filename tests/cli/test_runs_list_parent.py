"""``stepwise runs list --parent RUN_ID`` lists the child runs that run started, and no other."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from harness.workers import Procs
from stepwise import workflow
from tests.conftest import Engine


async def test_runs_list_parent_lists_only_that_runs_children(
    engine: Engine, procs: Procs, backend_url: str
) -> None:
    @workflow("listed-child", registry=engine.registry)
    async def listed_child(ctx: Any) -> int:
        return int(ctx.input)

    @workflow("listed-parent", registry=engine.registry)
    async def listed_parent(ctx: Any) -> Any:
        return await asyncio.gather(
            ctx.step.run_workflow(listed_child, 1, name="one"),
            ctx.step.run_workflow(listed_child, 2, name="two"),
        )

    parent = await engine.run(listed_parent)
    other = await engine.run(listed_parent)
    children = {str(step.child_id) for step in await engine.client.steps(parent.id)}
    others = {str(step.child_id) for step in await engine.client.steps(other.id)}
    assert len(children) == 2
    assert not children & others

    def listed(*args: str) -> set[str]:
        done = procs.cli("runs", "list", *args, "--json", "--database-url", backend_url)
        assert done.returncode == 0, done.stderr
        return {run["id"] for run in json.loads(done.stdout)}

    assert listed("--parent", parent.id) == children
    assert listed("--parent", other.id[:8]) == others  # a unique prefix will do
    assert listed("--parent", next(iter(children))) == set()  # a child started none
    table = procs.cli("runs", "list", "--parent", parent.id, "--database-url", backend_url)
    assert table.returncode == 0, table.stderr
    assert all(child in table.stdout for child in children)
    unknown = procs.cli("runs", "list", "--parent", "ffffffff", "--database-url", backend_url)
    assert unknown.returncode != 0
    assert "ffffffff" in unknown.stderr
