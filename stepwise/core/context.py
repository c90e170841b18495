"""What a workflow function receives: its input, its run's identity and the step API."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Generic, TypeVar

from stepwise.core import runlog

if TYPE_CHECKING:
    from stepwise.core.steps import StepApi

InputT = TypeVar("InputT")


@dataclass(frozen=True, slots=True)
class WorkflowContext(Generic[InputT]):
    """``ctx`` in ``async def my_workflow(ctx)``.

    Annotate ``ctx: WorkflowContext[MyModel]`` to have the input validated into ``MyModel``.
    """

    input: InputT
    run_id: str
    version: str | None
    attempt: int
    """The workflow-level attempt (1 unless the workflow has a retry policy)."""
    step: StepApi
    scheduled_at: datetime | None = None
    """The tick (UTC) of the schedule that started this run; None for runs started otherwise."""
    log: logging.LoggerAdapter[logging.Logger] = field(
        default_factory=lambda: logging.LoggerAdapter(logging.getLogger(runlog.LOGGER_NAME))
    )
    """A ``logging.Logger`` for the workflow's code: its lines are stored with the run, with
    the step they were logged in (``stepwise runs logs``, ``Client.logs``)."""
