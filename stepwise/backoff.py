"""Exponential backoff: the one formula behind ``RetryPolicy`` (step and workflow retries) and
``Backoff``, the schedule of every loop that waits for the database to come back (the
journal's writes, the worker's claims, the LISTEN connection, the operator's watch).

It sits below the backends, so the Postgres backend's reconnect loop can use it too.
``Backoff`` adds jitter: when the database restarts, every worker loses it at the same moment,
and without jitter they would all come back in lockstep, again and again. A ``RetryPolicy``
jitters only when asked (``jitter=``), through the same ``jittered``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

JITTER = 0.5
"""A ``Backoff`` wait is the exponential one times a random factor in ``[1 - JITTER, 1]``."""


def exponential(failures: int, initial: float, coefficient: float, cap: float) -> float:
    """``initial * coefficient ** (failures - 1)`` seconds, capped at ``cap``, for any count of
    ``failures`` (1-based): the cap is found by comparing exponents, so no power is computed
    that could overflow."""
    exponent = max(failures - 1, 0)
    if initial == 0 or initial >= cap or coefficient == 1:
        return min(initial, cap)
    if exponent * math.log(coefficient) >= math.log(cap) - math.log(initial):
        return cap
    return min(initial * coefficient**exponent, cap)


def jittered(seconds: float, jitter: float) -> float:
    """``seconds`` times a random factor in ``[1 - jitter, 1]`` (``jitter`` from 0 to 1): never
    longer than the wait it spreads, so a cap stays a cap."""
    return seconds * random.uniform(1 - jitter, 1) if jitter else seconds


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits between tries of something that fails while a service is away."""

    initial: float
    cap: float
    coefficient: float = 2.0

    def delay(self, failures: int) -> float:
        """The wait after the ``failures``-th failure in a row (1-based), jittered."""
        return jittered(exponential(failures, self.initial, self.coefficient, self.cap), JITTER)
