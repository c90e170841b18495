"""Retry policies with exponential backoff, for steps (on by default) and workflows (off)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field


class RetryPolicy(BaseModel):
    """How often to try, and how long to wait between tries.

    The n-th retry waits ``initial_interval * backoff_coefficient ** (n - 1)`` seconds, capped at
    ``max_interval``. ``max_attempts`` counts the first try: 1 means never retry.
    """

    model_config = ConfigDict(frozen=True)

    max_attempts: int = Field(default=3, ge=1)
    initial_interval: float = Field(default=1.0, ge=0)
    backoff_coefficient: float = Field(default=2.0, ge=1)
    max_interval: float = Field(default=60.0, ge=0)

    def delay(self, failed_attempts: int) -> timedelta:
        """The wait after ``failed_attempts`` failures (1-based)."""
        seconds = self.initial_interval * self.backoff_coefficient ** max(failed_attempts - 1, 0)
        return timedelta(seconds=min(seconds, self.max_interval))

    def allows_another(self, failed_attempts: int) -> bool:
        return failed_attempts < self.max_attempts


DEFAULT_STEP_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(max_attempts=1)
