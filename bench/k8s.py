"""Kubernetes: WorkflowRuns applied at once to the test control plane -> all Succeeded.

Filled in once the operator exists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.pgserver import BenchServer


async def run(pg: BenchServer, runs: int, *, log: Callable[[str], None]) -> dict[str, Any]:
    raise RuntimeError("operator not available")
