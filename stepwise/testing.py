"""Helpers for testing your own workflows: run one inline on a temporary SQLite file.

```python
from stepwise.testing import run_inline

async def test_fetch_all_data(tmp_path):
    run = await run_inline(fetch_all_data, {"userId": 1, "subId": "s"}, tmp_path / "t.db")
    assert run.output["user"]["id"] == 1
```
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from stepwise.client.client import Client, Run
from stepwise.core.definitions import WorkflowDefinition
from stepwise.core.registry import Registry
from stepwise.worker.inline import run_to_completion


async def run_inline(
    definition: WorkflowDefinition,
    input: Any = None,  # noqa: A002 - mirrors ctx.input
    database: str | Path | None = None,
    *,
    timeout: float | None = 60.0,
) -> Run:
    """Start ``definition`` with ``input`` and execute it here; returns the finished run.

    ``database`` is a SQLite file path (a temporary one by default) or a database URL.
    """
    registry = Registry()
    registry.add(definition)
    with tempfile.TemporaryDirectory(prefix="stepwise-test-") as scratch:
        url = _url(database, Path(scratch))
        async with Client.connect(url, registry=registry) as client:
            run = await client.start(definition, input)
            return await run_to_completion(client, registry, run.id, timeout=timeout)


def _url(database: str | Path | None, scratch: Path) -> str:
    if database is None:
        return f"sqlite:///{scratch / 'stepwise.db'}"
    if isinstance(database, Path) or "://" not in database:
        return f"sqlite:///{Path(database).resolve()}"
    return database
