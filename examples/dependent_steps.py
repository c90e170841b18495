"""Dependent steps are simply awaited one after the other.

stepwise run examples/dependent_steps.py user-orders --input '{"userId": 7}'
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from stepwise import WorkflowContext, workflow


class UserOrdersInput(BaseModel):
    userId: int


def find_user(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "name": f"user-{user_id}"}


def find_orders(user_id: int) -> list[dict[str, Any]]:
    return [{"order": n, "userId": user_id} for n in range(3)]


@workflow("user-orders")
async def user_orders(ctx: WorkflowContext[UserOrdersInput]) -> dict[str, Any]:
    user = await ctx.step.run("fetch-user", find_user, ctx.input.userId)
    orders = await ctx.step.run("fetch-orders", find_orders, user["id"])
    return {"user": user, "orders": orders}
