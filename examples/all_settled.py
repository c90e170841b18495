"""Every result and every error: ``asyncio.gather(..., return_exceptions=True)``.

stepwise run examples/all_settled.py all-settled
"""

from __future__ import annotations

import asyncio
from typing import Any

from stepwise import NO_RETRY, StepFailed, workflow


def fetch_user() -> dict[str, str]:
    return {"name": "ada"}


def fetch_settings() -> dict[str, str]:
    raise ConnectionError("Database unavailable")


@workflow("all-settled")
async def all_settled(ctx: Any) -> dict[str, Any]:
    results = await asyncio.gather(
        ctx.step.run("fetch-user", fetch_user),
        ctx.step.run("fetch-settings", fetch_settings, retry=NO_RETRY),
        return_exceptions=True,
    )
    report: dict[str, Any] = {"fulfilled": [], "rejected": []}
    for result in results:
        if isinstance(result, StepFailed):
            report["rejected"].append(f"{result.step}: {result.error_message}")
        else:
            report["fulfilled"].append(result)
    return report


@workflow("first-error")
async def first_error(ctx: Any) -> str:
    """Plain ``gather``: the first failure is raised in the workflow, which may catch it."""
    try:
        await asyncio.gather(
            ctx.step.run("fetch-user", fetch_user),
            ctx.step.run("fetch-settings", fetch_settings, retry=NO_RETRY),
        )
    except StepFailed as exc:
        return f"handled: {exc.error_type}: {exc.error_message}"
    return "no error"
