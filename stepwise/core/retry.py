"""Retry policies with exponential backoff, for steps (on by default) and workflows (off).

A failure is retried unless the policy's attempts are used up, the error is one retrying
cannot help (``NonRetryableError``, or a type the policy lists in ``non_retryable``), or the
next attempt would start after the run's deadline. Waits go through ``stepwise.backoff``, the
one formula every wait of the engine uses, jittered when the policy asks for it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stepwise import backoff
from stepwise.errors import NonRetryableError, StepFailed

MAX_INTERVAL_SECONDS = 365 * 24 * 3600.0
"""The longest wait a policy may ask for: any wait plus now stays a representable datetime."""


class RetryPolicy(BaseModel):
    """How often to try, and how long to wait between tries.

    The n-th retry waits ``initial_interval * backoff_coefficient ** (n - 1)`` seconds, capped at
    ``max_interval``, then shortened by a random part of up to ``jitter`` of it (0: none, 0.5:
    a random 50-100 % of the wait), so that many runs failed by the same outage do not retry
    in lockstep. ``max_attempts`` counts the first try: 1 means never retry, None means no
    limit but the run's own (its deadline, its cap of step attempts). An error that is a
    ``NonRetryableError`` or an instance of a ``non_retryable`` type is final at once.
    """

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    max_attempts: int | None = Field(default=3, ge=1)
    initial_interval: float = Field(default=1.0, ge=0, le=MAX_INTERVAL_SECONDS)
    backoff_coefficient: float = Field(default=2.0, ge=1)
    max_interval: float = Field(default=60.0, ge=0, le=MAX_INTERVAL_SECONDS)
    jitter: float = Field(default=0.0, ge=0, le=1)
    non_retryable: tuple[type[BaseException], ...] = ()

    @field_validator("non_retryable", mode="before")
    @classmethod
    def _one_type_is_a_tuple(cls, value: Any) -> Any:
        """``non_retryable=ValueError`` reads as ``(ValueError,)``, as ``except`` would."""
        return (value,) if isinstance(value, type) else value

    def delay(self, failed_attempts: int) -> timedelta:
        """The wait after ``failed_attempts`` failures (1-based), for any count."""
        base = backoff.exponential(
            failed_attempts, self.initial_interval, self.backoff_coefficient, self.max_interval
        )
        return timedelta(seconds=backoff.jittered(base, self.jitter))

    def allows_another(self, failed_attempts: int) -> bool:
        return self.max_attempts is None or failed_attempts < self.max_attempts

    def retryable(self, error: BaseException) -> bool:
        """Whether retrying could help with ``error`` (for a workflow: whether the step whose
        failure it raises could have been helped)."""
        if isinstance(error, StepFailed) and not error.retryable:
            return False
        return not isinstance(error, (NonRetryableError, *self.non_retryable))

    def retry_at(
        self, failed_attempts: int, deadline: datetime | None, error: BaseException
    ) -> datetime | None:
        """When the next attempt after ``error`` may start, or None: the error is not
        retryable, no attempt is left, or the next one would start after ``deadline`` (then
        the failure at hand is final, not the deadline)."""
        if not self.retryable(error) or not self.allows_another(failed_attempts):
            return None
        at = datetime.now(UTC) + self.delay(failed_attempts)
        if deadline is not None and at >= deadline:
            return None
        return at


DEFAULT_STEP_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(max_attempts=1)
