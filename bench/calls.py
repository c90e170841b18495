"""Round trips, counted: a Backend that forwards every call and times the ones that reach the
database, so a run can say how many calls per workflow it made and how long it waited on each.

It wraps the real backend (``Client`` and ``Worker`` take any ``Backend``), so the engine runs
unchanged; the cost is one extra coroutine frame per database call, not per step.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

from stepwise.backends.base import Backend

TIMED = frozenset(
    {
        "create_run", "get_run", "list_runs", "list_steps", "cancel_run", "expire_runs",
        "register_worker", "unregister_worker", "serving_workers", "served_versions",
        "claim_runs", "heartbeat", "write",
    }
)  # fmt: skip
"""Backend calls that are one database round trip each (``wait_for_work`` only waits)."""


class CountingBackend:
    def __init__(self, inner: Backend) -> None:
        self._inner = inner
        self.calls: dict[str, list[float]] = {}
        """name -> [calls, seconds awaited, items (ops written or runs claimed)]"""

    def reset(self) -> None:
        self.calls.clear()

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._inner, name)
        if name not in TIMED:
            return target
        return self._timed(name, target)

    def _timed(
        self, name: str, target: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(target)
        async def call(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                result = await target(*args, **kwargs)
            finally:
                entry = self.calls.setdefault(name, [0, 0.0, 0])
                entry[0] += 1
                entry[1] += time.perf_counter() - t0
            if name == "write":
                entry[2] += len(args[0])
            elif name == "claim_runs":
                entry[2] += len(result)
            return result

        return call

    def summary(self, runs: int) -> dict[str, Any]:
        """Per call kind: count, per workflow, mean time awaited (pool queueing included), and
        items per call."""
        out: dict[str, Any] = {}
        for name, (count, seconds, items) in sorted(self.calls.items()):
            out[name] = {
                "calls": int(count),
                "per_workflow": round(count / runs, 3),
                "mean_wait_ms": round(seconds / count * 1000, 2),
                **({"items_per_call": round(items / count, 1)} if items else {}),
            }
        return out
