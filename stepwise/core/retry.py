"""Retry policies with exponential backoff, for steps (on by default) and workflows (off)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from stepwise import backoff

MAX_INTERVAL_SECONDS = 365 * 24 * 3600.0
"""The longest wait a policy may ask for: any wait plus now stays a representable datetime."""


class RetryPolicy(BaseModel):
    """How often to try, and how long to wait between tries.

    The n-th retry waits ``initial_interval * backoff_coefficient ** (n - 1)`` seconds, capped at
    ``max_interval``. ``max_attempts`` counts the first try: 1 means never retry.
    """

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    max_attempts: int = Field(default=3, ge=1)
    initial_interval: float = Field(default=1.0, ge=0, le=MAX_INTERVAL_SECONDS)
    backoff_coefficient: float = Field(default=2.0, ge=1)
    max_interval: float = Field(default=60.0, ge=0, le=MAX_INTERVAL_SECONDS)

    def delay(self, failed_attempts: int) -> timedelta:
        """The wait after ``failed_attempts`` failures (1-based), for any count (no jitter: the
        retries of one run's step are no herd)."""
        return timedelta(
            seconds=backoff.exponential(
                failed_attempts, self.initial_interval, self.backoff_coefficient, self.max_interval
            )
        )

    def allows_another(self, failed_attempts: int) -> bool:
        return failed_attempts < self.max_attempts

    def retry_at(self, failed_attempts: int, deadline: datetime | None) -> datetime | None:
        """When the next attempt may start, or None: no attempt left, or the next one would
        start after ``deadline`` (then the failure at hand is final, not the deadline)."""
        if not self.allows_another(failed_attempts):
            return None
        at = datetime.now(UTC) + self.delay(failed_attempts)
        if deadline is not None and at >= deadline:
            return None
        return at


DEFAULT_STEP_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(max_attempts=1)
