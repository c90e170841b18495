"""The ``WorkflowSignal`` resource as pydantic models (the source of its CRD, like ``models``
for ``WorkflowRun``): a signal sent to a WorkflowRun with kubectl alone. The operator sends
it to the run once (the resource's uid is the signal's idempotency key), makes the
WorkflowRun its owner and says in the status what became of it."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from pydantic import Field

from stepwise.core.steps import MAX_NAME_LENGTH
from stepwise.operator.models import _Model

KIND = "WorkflowSignal"
PLURAL = "workflowsignals"
SINGULAR = "workflowsignal"
SHORT_NAMES = ("wfsig",)
SPEC_IMMUTABLE_MESSAGE = "spec is immutable; create a new WorkflowSignal to signal again"


class WorkflowSignalSpec(_Model):
    run: str = Field(
        max_length=253, description="Name of the WorkflowRun, in this namespace, to signal."
    )
    signal: str = Field(
        min_length=1,
        max_length=MAX_NAME_LENGTH,
        description="Name of the signal: what the workflow's ctx.step.wait_for_signal waits for.",
    )
    payload: Any = Field(
        default=None,
        description="What the wait returns: any JSON value.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class SignalPhase(enum.StrEnum):
    PENDING = "Pending"
    """Not sent yet: the WorkflowRun or its run does not exist (yet), or the database is away."""
    DELIVERED = "Delivered"
    """Kept by the run: its next wait for the signal's name receives it."""
    REFUSED = "Refused"
    """The run had finished: no wait will ever receive it."""


class WorkflowSignalStatus(_Model):
    """Written by the operator."""

    phase: SignalPhase | None = None
    run_id: str | None = Field(default=None, description="The id of the run signaled.")
    sequence: int | None = Field(
        default=None, description="The signal's place in the order the run received signals."
    )
    delivered_at: datetime | None = None
    message: str | None = None


class WorkflowSignal(_Model):
    """A signal to a WorkflowRun's workflow: `kubectl get wfsig`."""

    api_version: str | None = None
    kind: str | None = None
    metadata: dict[str, Any] | None = None
    spec: WorkflowSignalSpec = Field(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self == oldSelf", "message": SPEC_IMMUTABLE_MESSAGE}
            ]
        }
    )
    status: WorkflowSignalStatus | None = None
