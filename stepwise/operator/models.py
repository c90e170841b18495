"""The ``WorkflowRun`` resource as pydantic models: the one source of the CRD's schema.

``stepwise crds`` renders these models into the CRD YAML (``crd.py``), the handlers parse a
resource's spec with ``WorkflowRunSpec`` and ``status.py`` builds ``WorkflowRunStatus``, so
the API server's validation, ``kubectl explain`` and the operator cannot disagree. Field
descriptions are the user-facing reference: they show up in ``kubectl explain wfr.spec``.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from stepwise.core.definitions import NAME_PATTERN
from stepwise.core.limits import DURATION_MESSAGE as DURATION_MESSAGE
from stepwise.core.limits import DURATION_PATTERN as DURATION_PATTERN
from stepwise.core.limits import parse_duration as parse_duration

GROUP = "stepwise.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "WorkflowRun"
PLURAL = "workflowruns"
SINGULAR = "workflowrun"
SHORT_NAMES = ("wfr",)
CATEGORIES = ("stepwise",)
RETRY_ANNOTATION = f"{GROUP}/retry"
"""Set it (to a new value each time, e.g. ``$(date +%s)``) to retry a failed or canceled run."""
RUN_ID_ANNOTATION = f"{GROUP}/run-id"
"""On the WorkflowRun of a child run: the run it mirrors, which its parent's step started (the
operator starts none for it)."""
TRACEPARENT_ANNOTATION = f"{GROUP}/traceparent"
"""A W3C traceparent: the run's trace continues the one it names (``core.tracing``)."""
PARENT_LABEL = f"{GROUP}/parent"
"""On the WorkflowRun of a child run: the name of its parent's WorkflowRun, its owner."""

SPEC_IMMUTABLE_MESSAGE = "spec is immutable; create a new WorkflowRun"
START_MESSAGE = "give startAt or delay, not both"


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class WorkflowRunSpec(_Model):
    """What to run. Immutable after create: to run again, create a new WorkflowRun."""

    workflow: str = Field(
        pattern=NAME_PATTERN,
        max_length=253,
        description="Name of the workflow to run, as registered with @workflow by the workers.",
    )
    input: dict[str, Any] | None = Field(
        default=None,
        description="The workflow's input (ctx.input): any JSON object.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    version: str | None = Field(
        default=None,
        max_length=253,
        description="Version recorded on the run (ctx.version); default: the workflow's own.",
    )
    deadline: str | None = Field(
        default=None,
        max_length=64,
        description=(
            "Time budget counted from the resource's creation, like 90s, 10m or 1h30m: "
            "a run still unfinished by then fails."
        ),
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": f"self.matches('{DURATION_PATTERN}')", "message": DURATION_MESSAGE}
            ]
        },
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None,
        ge=0,
        description="Delete the WorkflowRun this many seconds after its run finished.",
    )
    start_at: datetime | None = Field(
        default=None,
        description=(
            "Start the run at this time (RFC 3339, like 2026-01-31T08:00:00Z); until then it "
            "is Pending and no worker takes it. Not with delay."
        ),
    )
    delay: str | None = Field(
        default=None,
        max_length=64,
        description=(
            "Start the run this long after the resource's creation, like 90s, 10m or 1h30m; "
            "until then it is Pending and no worker takes it. Not with startAt."
        ),
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": f"self.matches('{DURATION_PATTERN}')", "message": DURATION_MESSAGE}
            ]
        },
    )

    @field_validator("deadline", "delay")
    @classmethod
    def _check_duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _one_start(self) -> WorkflowRunSpec:
        if self.start_at is not None and self.delay is not None:
            raise ValueError(START_MESSAGE)
        return self

    def start_after(self, created: datetime) -> datetime | None:
        """When the run of a resource created at ``created`` starts (None: at once)."""
        if self.delay is not None:
            return created + parse_duration(self.delay)
        return self.start_at

    def deadline_after(self, created: datetime) -> datetime | None:
        """The absolute deadline of a run whose resource was created at ``created``."""
        return None if self.deadline is None else created + parse_duration(self.deadline)


class Phase(enum.StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SLEEPING = "Sleeping"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELED = "Canceled"

    @property
    def finished(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELED)


StepState = Literal["Running", "Sleeping", "Completed", "Failed", "Canceled"]
ConditionStatus = Literal["True", "False", "Unknown"]


class StepSummary(_Model):
    name: str = Field(description="The step's memo key (its name, auto-indexed when repeated).")
    state: StepState
    attempts: int = Field(description="Attempts so far, retries included.")
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration: str | None = Field(default=None, description="From its first start to its end.")
    wake_at: datetime | None = Field(default=None, description="When a durable sleep ends.")
    error: str | None = Field(default=None, description="Why the last attempt failed.")


class StepCounts(_Model):
    started: int = Field(description="Steps that started, in any state.")
    completed: int
    running: int
    sleeping: int
    failed: int


class RunError(_Model):
    type: str
    message: str
    step: str | None = Field(default=None, description="The step the error came from, if any.")


class Condition(_Model):
    type: str
    status: ConditionStatus
    reason: str
    message: str
    last_transition_time: datetime
    observed_generation: int | None = None


class WorkflowRunStatus(_Model):
    """A mirror of the run kept in the database, written by the operator. Never read back:
    the database is the source of truth, and results stay there."""

    run_id: str | None = Field(default=None, description="Id of the run in the database.")
    phase: Phase | None = Field(
        default=None, description="Pending, Running, Sleeping, Succeeded, Failed or Canceled."
    )
    steps: str | None = Field(default=None, description="Completed/started steps, e.g. 2/3.")
    step_counts: StepCounts | None = None
    step_details: list[StepSummary] | None = Field(
        default=None,
        description="Per-step summary in start order; unfinished and failed steps come first "
        "when there are too many to list (see stepsOmitted).",
    )
    steps_omitted: int | None = Field(
        default=None, description="Steps left out of stepDetails to keep the resource small."
    )
    attempt: int | None = Field(default=None, description="Workflow-level attempt, 1-based.")
    claims: int | None = Field(
        default=None, description="How many times a worker took the run up (recoveries + 1)."
    )
    started_at: datetime | None = None
    finished_at: datetime | None = None
    deadline_at: datetime | None = None
    duration: str | None = Field(default=None, description="From start to finish.")
    output: Any = Field(
        default=None,
        description="The workflow's result when it is small; see outputTruncated.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    output_truncated: bool | None = Field(
        default=None,
        description="The result is too large for the resource: outputPreview shows its start; "
        "`stepwise runs show <runId>` prints all of it.",
    )
    output_preview: str | None = None
    error: RunError | None = None
    message: str | None = Field(default=None, description="What is happening, in one line.")
    start_at: datetime | None = Field(
        default=None, description="When a run that has not started yet is due to start."
    )
    log_tail: list[str] | None = Field(
        default=None,
        description="The last lines the run logged (ctx.log, logging inside its steps), each "
        "cut to a line; all of them: stepwise runs logs RUN_ID.",
    )
    conditions: list[Condition] | None = Field(
        default=None,
        description="Finished and Succeeded (Job style), WorkerAvailable (False while no live "
        "worker serves the workflow).",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )
    observed_generation: int | None = None
    retry_request: str | None = Field(
        default=None,
        description=f"The last value of the {RETRY_ANNOTATION} annotation the operator acted on: "
        "set the annotation to a new value to retry a failed or canceled run.",
    )


class WorkflowRun(_Model):
    """A run of a stepwise workflow: `kubectl get wfr` shows its progress, and deleting it
    cancels a run still in flight."""

    api_version: str | None = None
    kind: str | None = None
    metadata: dict[str, Any] | None = None
    spec: WorkflowRunSpec = Field(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self == oldSelf", "message": SPEC_IMMUTABLE_MESSAGE},
                {"rule": "!(has(self.startAt) && has(self.delay))", "message": START_MESSAGE},
            ]
        }
    )
    status: WorkflowRunStatus | None = None
