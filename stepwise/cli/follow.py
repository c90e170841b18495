"""Live progress of a run read from the database: ``stepwise start --wait`` shows it the way
``stepwise run`` does, although workers elsewhere execute the run.

What the database shows is announced by comparing what it holds now with what it held at the
last look (on every change notification, and at least each second): a step that started,
ended, failed and will be retried, or sleeps until a time; and the workflow retried as a
whole (its attempt grew). A step that started and ended between two looks is announced once,
as ended; a sleep that began and ended between two looks still shows, as slept.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from stepwise.backends.base import StepStatus
from stepwise.cli import view
from stepwise.client.client import Client, Run, Step
from stepwise.core import steps as step_api
from stepwise.core import tracebacks
from stepwise.errors import WaitTimeout

LOOK_EVERY = 1.0
"""Seconds between looks at the run when no change notification comes."""
ERROR_WIDTH = 200


class Progress:
    """Announces, on stderr, what changed in a run since the last ``update``. With
    ``steps=False`` only sleeps and workflow retries (``stepwise run`` prints its steps as its
    own worker executes them)."""

    def __init__(self, *, steps: bool) -> None:
        self.steps = steps
        self._seen: dict[str, tuple[StepStatus, int]] = {}
        self._attempt: int | None = None

    def update(self, run: Run, steps: Sequence[Step]) -> None:
        now = datetime.now(UTC)
        # Seen first: the attempts since the run (re)started were retries made before this look.
        if run.attempt > (run.first_attempt if self._attempt is None else self._attempt):
            why = f" after {tracebacks.one_line(run.error, limit=ERROR_WIDTH)}" if run.error else ""
            self._say(
                f"  ↻ workflow retried{why}: attempt {run.attempt} due "
                f"{view.when(run.available_at, now)}"
            )
            self._seen.clear()  # its failed steps were erased and run again
        self._attempt = run.attempt
        for step in steps:
            state = (step.status, step.attempts)
            before = self._seen.get(step.key)
            if before != state:
                self._seen[step.key] = state
                self._announce(step, before is not None and before[0] is StepStatus.SLEEPING, now)

    def _announce(self, step: Step, was_sleeping: bool, now: datetime) -> None:
        if step.status is StepStatus.SLEEPING and step.wake_at is not None:
            self._say(
                f"  ⏾ {step.key}: sleeps until {view.when(step.wake_at, now)}; no worker held"
            )
        elif step.wake_at is not None and step.status is StepStatus.COMPLETED and not was_sleeping:
            self._say(f"  ⏾ {step.key}: slept until {view.stamp(step.wake_at)}")
        elif not self.steps:
            return
        elif step.status is StepStatus.RUNNING:
            again = f" (attempt {step.attempts})" if step.attempts > 1 else ""
            self._say(f"  ▶ {step.key}{again}")
        elif step.status is StepStatus.COMPLETED:
            took = view.duration(view.seconds_between(step.started_at, step.finished_at))
            self._say(f"  ✓ {step.key} ({took})")
        elif step.error is not None:
            retrying = step.status is StepStatus.FAILED and not step.error.get(step_api.FINAL)
            error = tracebacks.one_line(step.error, limit=ERROR_WIDTH)
            self._say(f"  ✗ {step.key}: {error}{' — retrying' if retrying else ''}")
        else:
            self._say(f"  ✗ {step.key}: {step.status.value}")

    def _say(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)


async def follow(client: Client, run_id: str, progress: Progress, timeout: float | None) -> Run:
    """The run once finished, its progress announced on the way; ``WaitTimeout`` when
    ``timeout`` seconds pass first (the run goes on)."""
    scope = asyncio.timeout(timeout)
    try:
        async with scope, client.watch() as changes:
            while True:
                run = await client.get(run_id)
                progress.update(run, await client.steps(run_id))
                if run.finished:
                    return run
                await changes.next(LOOK_EVERY)
    except TimeoutError:
        if not scope.expired():
            raise
        raise WaitTimeout(run_id, timeout or 0.0) from None
