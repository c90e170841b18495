"""Replay divergence: a replay that does not follow the history its run has stored.

A replay requests steps by memo key; the history is the steps stored when the run was claimed.
Deterministic code requests every completed step of its history again before it ends or
sleeps. So an execution *diverges* when it leaves a completed step of its history unrequested
(``missing``) and either requested a step the history does not hold (``new``: a step renamed,
or code that took another path) or still ended the run or put it to sleep. An execution that
fails with missing steps but nothing new is not counted: a workflow error may legitimately
stop it early. Steps reordered under the same names do not diverge: each name is its own memo
key, so each step still gets its own result.

Typical cause: code deployed with renamed or removed steps while runs were in flight. The
engine reports it (a warning stored on the run, a log line, a metric); with
``OnDivergence.FAIL`` it also fails the run instead of letting it end or sleep.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Set

from stepwise.backends.base import StepRecord, StepStatus
from stepwise.core import codec
from stepwise.errors import InvalidArgument, ReplayDiverged

_CLEAN_ENDS = frozenset({"succeeded", "sleeping"})


class OnDivergence(enum.StrEnum):
    """What a worker does with a run whose replay diverged."""

    WARN = "warn"
    """Store a warning on the run, log and count it; the run goes on."""
    FAIL = "fail"
    """As ``WARN``, and fail the run with ``ReplayDiverged`` instead of its outcome."""


def parse(value: str) -> OnDivergence:
    """``value`` as an ``OnDivergence``, or ``InvalidArgument`` listing the choices."""
    try:
        return OnDivergence(value)
    except ValueError:
        choices = ", ".join(choice.value for choice in OnDivergence)
        raise InvalidArgument("on_divergence", f"must be one of {choices}, got {value!r}") from None


def detect(
    run_id: str, history: Mapping[str, StepRecord], requested: Set[str], outcome: str
) -> ReplayDiverged | None:
    """The divergence of an execution that ends with ``outcome``, or None."""
    missing = sorted(
        key
        for key, step in history.items()
        if step.status is StepStatus.COMPLETED and key not in requested
    )
    if not missing:
        return None
    new = sorted(key for key in requested if key not in history)
    if not new and outcome not in _CLEAN_ENDS:
        return None
    return ReplayDiverged(run_id, missing, new)


def warning_document(diverged: ReplayDiverged) -> str:
    """The warning stored on the run: ``{"type", "message", "missing", "new"}``."""
    return codec.dumps(
        {
            "type": "ReplayDiverged",
            "message": str(diverged),
            "missing": diverged.missing,
            "new": diverged.new,
        }
    )
