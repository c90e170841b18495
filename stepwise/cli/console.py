"""What the commands print, and how a command's work ends: its exit code.

Exit codes: 0 success; 1 a run that failed or a wait that ran out; 2 a bad flag, variable,
argument or an unreachable database; 130 interrupted; 141 the reader of the output went away.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Coroutine
from typing import Any

from stepwise.backends.base import RunStatus
from stepwise.client.client import Run
from stepwise.core.events import ExecutionListener
from stepwise.errors import StepwiseError


def execute(work: Coroutine[Any, Any, int]) -> int:
    """Run a command's ``work`` to its exit code; a ``StepwiseError`` is one line, exit 2."""
    try:
        code = asyncio.run(work)
        sys.stdout.flush()
    except StepwiseError as exc:
        print(f"stepwise: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return _closed_pipe()
    return code


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT: how a serving command (worker, dashboard) stops."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def _closed_pipe() -> int:
    """The reader of our output went away (``stepwise runs list | head``): end quietly, with
    the status of a process killed by SIGPIPE, as ``cat`` would."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush must not fail again
    return 128 + signal.SIGPIPE


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def report(run: Run) -> int:
    """A finished run: its output on stdout (exit 0), or its end and error on stderr (1)."""
    if run.status is RunStatus.SUCCEEDED:
        print_json(run.output)
        return 0
    print(f"run {run.id} {run.status.value}", file=sys.stderr)
    if run.error_text:
        print(run.error_text, file=sys.stderr)
    return 1


class StepPrinter(ExecutionListener):
    """Shows each step of one run as it starts and ends, on stderr."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def _say(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def step_started(self, run_id: str, key: str, attempt: int) -> None:
        if run_id == self.run_id:
            again = f" (attempt {attempt})" if attempt > 1 else ""
            self._say(f"  ▶ {key}{again}")

    def step_replayed(self, run_id: str, key: str) -> None:
        if run_id == self.run_id:
            self._say(f"  ↺ {key} (stored result)")

    def step_finished(
        self, run_id: str, key: str, *, ok: bool, seconds: float, error: str | None, retrying: bool
    ) -> None:
        if run_id != self.run_id:
            return
        if ok:
            self._say(f"  ✓ {key} ({seconds * 1000:.0f} ms)")
        else:
            self._say(f"  ✗ {key}: {error}{' — retrying' if retrying else ''}")
