"""A durable sleep: welcome a user now, follow up later, without holding a worker meanwhile.

stepwise run examples/durable_sleep.py onboarding --input '{"user": "ada", "waitSeconds": 2}'

``ctx.step.sleep`` stores when the run should wake up and puts the run aside: the worker slot
is free for other runs, and any worker resumes this one once the time has come, even after a
restart. On resume the workflow replays from the top: the welcome step returns its stored
result instead of sending a second email.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from stepwise import workflow


def send_email(to: str, subject: str) -> dict[str, str]:
    return {"to": f"{to}@example.com", "subject": subject, "status": "sent"}


@workflow("onboarding")
async def onboarding(ctx: Any) -> list[dict[str, str]]:
    user = ctx.input["user"]
    welcome = await ctx.step.run("welcome", send_email, user, "Welcome!")
    await ctx.step.sleep("wait-before-tips", timedelta(seconds=ctx.input.get("waitSeconds", 60)))
    tips = await ctx.step.run("tips", send_email, user, "Three tips for your first week")
    return [welcome, tips]
