"""The ``WorkflowSchedule`` resource as pydantic models (the source of its CRD, like
``models`` for ``WorkflowRun``), modelled on the CronJob: a cron ``schedule`` read in
``timeZone`` that creates WorkflowRuns owned by it, with a concurrency policy, a starting
deadline, history limits and ``suspend``. Field descriptions show up in ``kubectl explain
wfs.spec``."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from pydantic import Field, field_validator

from stepwise.core import cron
from stepwise.core.definitions import NAME_PATTERN
from stepwise.operator.models import _Model

KIND = "WorkflowSchedule"
PLURAL = "workflowschedules"
SINGULAR = "workflowschedule"
SHORT_NAMES = ("wfs",)
SCHEDULE_LABEL = "stepwise.dev/schedule"
"""On every WorkflowRun a schedule creates: the schedule's name."""
SCHEDULED_AT_ANNOTATION = "stepwise.dev/scheduled-at"
"""On every WorkflowRun a schedule creates: its tick (UTC, ISO 8601)."""


class ConcurrencyPolicy(enum.StrEnum):
    ALLOW = "Allow"
    FORBID = "Forbid"
    REPLACE = "Replace"


class WorkflowScheduleSpec(_Model):
    schedule: str = Field(
        max_length=255,
        description="Cron expression: 5 fields (minute hour day month weekday), 6 with seconds "
        "first, or a macro such as @hourly.",
    )
    time_zone: str = Field(
        default="UTC", max_length=64, description="IANA time zone the schedule is read in."
    )
    workflow: str = Field(
        pattern=NAME_PATTERN,
        max_length=253,
        description="Name of the workflow each WorkflowRun runs.",
    )
    input: dict[str, Any] | None = Field(
        default=None,
        description="The input of every run (ctx.input): any JSON object.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    concurrency_policy: ConcurrencyPolicy = Field(
        default=ConcurrencyPolicy.ALLOW,
        description="Allow: runs may overlap. Forbid: a tick waits while a run is active (and "
        "is missed past startingDeadlineSeconds). Replace: the active runs are deleted "
        "(canceled) and the new one starts.",
    )
    starting_deadline_seconds: int | None = Field(
        default=None,
        ge=0,
        description="A tick more than this late is missed, not started. Unset: no deadline. "
        "Only the latest missed tick ever starts.",
    )
    successful_runs_history_limit: int = Field(
        default=3, ge=0, description="Succeeded WorkflowRuns kept; older ones are deleted."
    )
    failed_runs_history_limit: int = Field(
        default=1, ge=0, description="Failed or canceled WorkflowRuns kept."
    )
    suspend: bool = Field(default=False, description="True: start no run until set false.")

    @field_validator("schedule")
    @classmethod
    def _check_schedule(cls, value: str) -> str:
        cron.parse(value)
        return value

    def timetable(self) -> cron.Cron:
        return cron.parse(self.schedule, self.time_zone)


class WorkflowScheduleStatus(_Model):
    """Written by the operator."""

    active: list[str] | None = Field(
        default=None, description="Names of its WorkflowRuns not finished yet."
    )
    active_count: int | None = None
    last_schedule_time: datetime | None = Field(
        default=None, description="The tick of the last WorkflowRun created."
    )
    last_successful_time: datetime | None = Field(
        default=None, description="The tick of the last WorkflowRun that succeeded."
    )
    last_missed_time: datetime | None = Field(
        default=None, description="The last tick missed (past startingDeadlineSeconds)."
    )
    next_schedule_time: datetime | None = None
    message: str | None = Field(default=None, description="What is wrong, if anything.")


class WorkflowSchedule(_Model):
    """Runs a stepwise workflow on a cron schedule: `kubectl get wfs`."""

    api_version: str | None = None
    kind: str | None = None
    metadata: dict[str, Any] | None = None
    spec: WorkflowScheduleSpec
    status: WorkflowScheduleStatus | None = None
