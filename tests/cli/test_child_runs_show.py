"""``stepwise runs show`` names a child's parent and a parent's children."""

from __future__ import annotations

import json
from typing import Any

from harness.workers import Procs
from stepwise import workflow
from tests.conftest import Engine


async def test_runs_show_links_a_parent_and_its_child(
    engine: Engine, procs: Procs, backend_url: str
) -> None:
    @workflow("shown-child", registry=engine.registry)
    async def shown_child(ctx: Any) -> str:
        return "child output"

    @workflow("shown-parent", registry=engine.registry)
    async def shown_parent(ctx: Any) -> Any:
        return await ctx.step.run_workflow(shown_child, name="the-child")

    run = await engine.run(shown_parent)
    (step,) = await engine.client.steps(run.id)
    assert step.child_id is not None

    def show(*args: str) -> str:
        done = procs.cli("runs", "show", *args, "--database-url", backend_url)
        assert done.returncode == 0, done.stderr
        return done.stdout

    parent_view = show(run.id)
    assert "the-child" in parent_view
    assert '"child output"' in parent_view
    child_view = show(step.child_id)
    assert f"parent      {run.id} (step the-child)" in child_view
    parent_doc = json.loads(show(run.id, "--json"))
    assert parent_doc["steps"][0]["child_id"] == step.child_id
    child_doc = json.loads(show(step.child_id, "--json"))
    assert (child_doc["parent_id"], child_doc["parent_step"]) == (run.id, "the-child")
