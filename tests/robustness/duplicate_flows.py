"""An app that registers two workflows under one name: importing it must fail, naming both.

Never imported by the tests themselves; a worker process is pointed at it and must refuse to
start.
"""

from __future__ import annotations

from typing import Any

from stepwise import WorkflowContext, workflow


@workflow("robust-duplicate")
async def first_definition(ctx: WorkflowContext[Any]) -> int:
    return 1


@workflow("robust-duplicate")
async def second_definition(ctx: WorkflowContext[Any]) -> int:
    return 2
