"""A run's log lines as the CLI prints them: ``runs logs`` (and ``-f``), and the last lines
that ``runs show`` ends with.

Following reads the run's status *before* its lines: once the run is seen finished, the lines
read next include every line it stored, so the last look misses none.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from stepwise.backends.base import LogEntry
from stepwise.client.client import Client
from stepwise.core import runlog

PAGE = 500
LOOK_EVERY = 1.0
"""Seconds between looks at a followed run when no change notification comes."""
TAIL = 10
"""The lines ``runs show`` ends with."""


async def tail(client: Client, run_id: str) -> list[str]:
    """The lines ``runs show`` ends with."""
    return [runlog.render(e) for e in await client.log_tail(run_id, TAIL)]


def document(entry: LogEntry) -> dict[str, Any]:
    """One line as ``runs logs --json`` and ``runs show --json`` print it."""
    return {
        "seq": entry.seq,
        "at": entry.at.isoformat(),
        "level": logging.getLevelName(entry.level),
        "logger": entry.logger,
        "step": entry.step,
        "attempt": entry.attempt,
        "message": entry.text,
        "dropped": entry.dropped,
    }


async def show(client: Client, run_id: str, *, follow: bool, as_json: bool) -> None:
    """Print the run's lines, oldest first; with ``follow``, then its new ones until it ends."""
    after = 0
    async with client.watch() as changes:
        while True:
            finished = (await client.get(run_id)).finished
            while True:
                found = await client.logs(run_id, after=after, limit=PAGE)
                for entry in found:
                    text = json.dumps(document(entry)) if as_json else runlog.render(entry)
                    print(text, flush=True)
                if found:
                    after = found[-1].seq
                if len(found) < PAGE:
                    break
            if finished or not follow:
                return
            await changes.next(LOOK_EVERY)
