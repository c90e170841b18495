"""A user's module as two releases deploy it: each worker process serves ``proc-versioned`` at
the version its ``FLOWS_VERSION`` names (``test_versions_processes`` starts one per version)."""

from __future__ import annotations

import os
from typing import Any

from stepwise import workflow

VERSION_VARIABLE = "FLOWS_VERSION"


@workflow("proc-versioned", version=os.environ.get(VERSION_VARIABLE, "1"))
async def versioned(ctx: Any) -> dict[str, Any]:
    """Says which release ran it, in which process, for which pinned version."""
    return {
        "release": os.environ.get(VERSION_VARIABLE, "1"),
        "pinned": ctx.version,
        "pid": os.getpid(),
    }
