"""A thread that notices when the worker's event loop stops turning, and says so loudly.

An async step that blocks (``time.sleep``, a CPU-bound loop, a sync driver call) stops the
whole loop: no heartbeat renews the leases, so other workers take this worker's runs over
while it still executes them. Nothing inside the loop can notice; a thread can. It posts a
tick to the loop every interval and, when a tick stays unanswered for as long as the lease,
logs an ERROR with the stack the loop thread is stuck in (the culprit's file and line).

A whole process that was not scheduled (SIGSTOP, a paused VM, a step holding the GIL inside
a C call) stops this thread too; it tells by its own late wake-up, logs a WARNING instead
(leases may have been lost meanwhile) and starts measuring afresh.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback

log = logging.getLogger(__name__)


class LoopWatchdog:
    """Watches the running loop from a daemon thread; ``threshold`` is the lease."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.interval = min(max(threshold / 4, 0.02), 1.0)
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._answered = time.monotonic()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="stepwise-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()

    def _tick(self) -> None:
        self._answered = time.monotonic()

    def _post(self) -> float:
        """Send a tick; returns when it was sent (read first: the loop may answer at once)."""
        sent = time.monotonic()
        try:
            self._loop.call_soon_threadsafe(self._tick)
        except RuntimeError:  # the loop closed: nothing left to watch
            self._stopped.set()
        return sent

    def _watch(self) -> None:
        sent = self._post()
        woke = time.monotonic()
        reported = False
        while not self._stopped.wait(self.interval):
            now = time.monotonic()
            late, woke = now - woke - self.interval, now
            if late >= self.threshold / 2:
                log.warning(
                    "this worker process did not run for %.1fs (paused, or a step held the GIL): "
                    "leases may have run out meanwhile",
                    late + self.interval,
                )
                sent, reported = self._post(), False
                continue
            if self._answered >= sent:
                if reported:
                    log.warning("event loop running again after %.1fs blocked", now - sent)
                sent, reported = self._post(), False
            elif not reported and now - sent >= self.threshold:
                reported = True
                log.error(
                    "event loop blocked for %.1fs, longer than the lease (%gs): a step blocks "
                    "it (an async step must never block; run blocking code in a sync step, "
                    "which runs in a thread). Other workers are taking this worker's runs "
                    "over. The loop is stuck in:\n%s",
                    now - sent,
                    self.threshold,
                    self._loop_stack(),
                )

    def _loop_stack(self) -> str:
        frame = sys._current_frames().get(self._loop_thread)
        return "".join(traceback.format_stack(frame)) if frame is not None else "(unknown)\n"
