"""Dependent steps are simply awaited one after the other.

Each step function declares its return type, so the workflow gets a ``User`` and a list of
``Order`` back (on the first run and on replay alike), and a type checker knows it.

stepwise run examples/dependent_steps.py user-orders --input '{"userId": 7}'
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from stepwise import WorkflowContext, workflow


class UserOrdersInput(BaseModel):
    userId: int


class User(BaseModel):
    id: int
    name: str


class Order(BaseModel):
    order: int
    userId: int


def find_user(user_id: int) -> User:
    return User(id=user_id, name=f"user-{user_id}")


def find_orders(user_id: int) -> list[Order]:
    return [Order(order=n, userId=user_id) for n in range(3)]


@workflow("user-orders")
async def user_orders(ctx: WorkflowContext[UserOrdersInput]) -> dict[str, Any]:
    user = await ctx.step.run("fetch-user", find_user, ctx.input.userId)
    orders = await ctx.step.run("fetch-orders", find_orders, user.id)
    return {"user": user, "orders": orders}
