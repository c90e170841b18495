"""Workflows that fail in the user's own code, for ``test_tracebacks``: each failing line is
marked with a comment the test finds, so the expected ``file:line`` never drifts."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from stepwise import NO_RETRY, WorkflowContext, workflow


class Card(BaseModel):
    number: str


def charge_card(cents: int) -> None:
    raise ValueError(f"card declined for {cents} cents")  # marker: step raises


def parse_reply(text: str) -> Any:
    return json.loads(text)  # marker: library raises


def read_card(raw: dict[str, Any]) -> Card:
    return Card.model_validate(raw)  # marker: pydantic raises


@workflow("body-fails")
async def body_fails(ctx: WorkflowContext[Any]) -> None:
    await ctx.step.run("fine", lambda: 1)
    raise RuntimeError("the body gave up")  # marker: body raises


@workflow("step-fails")
async def step_fails(ctx: WorkflowContext[Any]) -> None:
    await ctx.step.run("charge", charge_card, 250, retry=NO_RETRY)


@workflow("library-fails")
async def library_fails(ctx: WorkflowContext[Any]) -> None:
    await ctx.step.run("parse", parse_reply, "not json", retry=NO_RETRY)


@workflow("pydantic-fails")
async def pydantic_fails(ctx: WorkflowContext[Any]) -> None:
    await ctx.step.run("card", read_card, {}, retry=NO_RETRY)


@workflow("wrapped-fails")
async def wrapped_fails(ctx: WorkflowContext[Any]) -> None:
    try:
        await ctx.step.run("charge", charge_card, 100, retry=NO_RETRY)
    except Exception:
        raise LookupError("no other card on file") from None  # marker: handler raises
