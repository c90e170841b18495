"""Sending several notifications at once; each channel is its own durable step.

stepwise run examples/notifications.py send-notifications --input '{"user": "ada"}'
"""

from __future__ import annotations

import asyncio
from typing import Any

from stepwise import workflow


def send(channel: str, to: str) -> dict[str, str]:
    return {"channel": channel, "to": to, "status": "sent"}


@workflow("send-notifications")
async def send_notifications(ctx: Any) -> list[dict[str, str]]:
    user = ctx.input["user"]
    return list(
        await asyncio.gather(
            ctx.step.run("send-email", send, "email", f"{user}@example.com"),
            ctx.step.run("send-sms", send, "sms", f"+1-555-{user}"),
            ctx.step.run("send-push", send, "push", f"device-of-{user}"),
        )
    )
