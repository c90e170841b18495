"""Parallel steps: three independent fetches at once, each memoized on its own.

    stepwise run examples/fetch_all_data.py fetch-all-data \
        --input '{"userId": 42, "subId": "sub_123"}'
"""

from __future__ import annotations

import asyncio
from typing import Any

from stepwise import workflow


def find_user(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "name": f"user-{user_id}"}


async def retrieve_subscription(sub_id: str) -> dict[str, Any]:
    await asyncio.sleep(0.05)
    return {"id": sub_id, "plan": "pro", "status": "active"}


def find_settings(user_id: int) -> dict[str, Any]:
    return {"userId": user_id, "theme": "dark", "emails": True}


@workflow("fetch-all-data")
async def fetch_all_data(ctx: Any) -> dict[str, Any]:
    user, subscription, settings = await asyncio.gather(
        ctx.step.run("fetch-user", find_user, ctx.input["userId"]),
        ctx.step.run("fetch-subscription", retrieve_subscription, ctx.input["subId"]),
        ctx.step.run("fetch-settings", find_settings, ctx.input["userId"]),
    )
    return {"user": user, "subscription": subscription, "settings": settings}
