"""``stepwise.testing.run_inline``: what users call in their own tests."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from stepwise import Registry, RunStatus, workflow
from stepwise.testing import run_inline

registry = Registry()


@workflow("double-all", registry=registry)
async def double_all(ctx: Any) -> list[int]:
    return list(
        await asyncio.gather(*(ctx.step.run(f"double-{n}", lambda n=n: n * 2) for n in ctx.input))
    )


async def test_runs_on_a_temporary_database_by_default() -> None:
    run = await run_inline(double_all, [1, 2, 3])
    assert run.status is RunStatus.SUCCEEDED
    assert run.output == [2, 4, 6]


async def test_runs_on_a_given_sqlite_file(tmp_path: Path) -> None:
    database = tmp_path / "mine.db"
    run = await run_inline(double_all, [5], database)
    assert run.output == [10]
    assert database.exists()
