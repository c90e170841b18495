"""Bounded crash loops: a run whose worker keeps dying is failed, not handed on forever.

A step that kills its process (``os._exit``, OOM, a segfault) or blocks the event loop past
the lease never stores its failure, so no retry policy or attempt cap sees it. What every
such death leaves behind is a lease that ran out, and the claim that takes the run over
counts it durably (``RunRecord.recoveries``, reset once a claim finds more completed steps).
A worker that claims a run at the limit fails it with ``CrashLoop`` instead of executing it.

Naming the step: step starts are normally written without waiting (a lost start only re-runs
the step). A run that is recovering (``recoveries`` > 0) has its starts made durable before
the step runs (``core.steps``), so by the time the limit is reached the stored steps say
which one was running — at the cost of one commit per step, for those runs only.
"""

from __future__ import annotations

from stepwise.backends.base import ClaimedRun, FinishRun, RunStatus, StepStatus
from stepwise.core import codec
from stepwise.errors import CrashLoop

DEFAULT_MAX_RECOVERY_ATTEMPTS = 5
"""Deaths in a row, without a completed step, after which a run is failed."""
MAX_RECOVERY_ATTEMPTS = 10_000


def crash_loop(claimed: ClaimedRun, limit: int) -> CrashLoop | None:
    """The error to fail ``claimed`` with, if its worker died ``limit`` times in a row."""
    run = claimed.run
    if run.recoveries < limit:
        return None
    running = [s.key for s in claimed.steps if s.status is StepStatus.RUNNING]
    return CrashLoop(run.recoveries, running, limit)


def fail(claimed: ClaimedRun, error: CrashLoop) -> FinishRun:
    """The write that fails the run with ``error``."""
    return FinishRun(
        claimed.lease_token,
        claimed.run.id,
        RunStatus.FAILED,
        error=codec.encode_error(error),
    )
