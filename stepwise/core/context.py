"""What a workflow function receives: its input, its run's identity and the step API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Generic, TypeVar

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
