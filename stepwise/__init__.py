"""stepwise: durable workflows for Python, run on Kubernetes.

Everything a user's code needs is here; ``stepwise.testing`` helps their tests. Nothing
else is public. ``import stepwise`` pulls in neither kopf nor a database driver.
"""

from __future__ import annotations

from importlib import metadata

from stepwise.backends.base import LogEntry, RunStatus, StepStatus
from stepwise.client.client import Client, Run, RunAttempt, RunHandle, Signal, Step
from stepwise.client.paging import Page
from stepwise.core.children import ChildHandle
from stepwise.core.context import WorkflowContext
from stepwise.core.definitions import WorkflowDefinition
from stepwise.core.registry import Registry, default_registry, workflow
from stepwise.core.retry import NO_RETRY, RetryPolicy
from stepwise.errors import (
    AmbiguousRunId,
    ChildWorkflowFailed,
    ChildWorkflowTimeout,
    ConfigurationError,
    CrashLoop,
    DatabaseDamaged,
    DatabaseUnavailable,
    DeadlineExceeded,
    DefinitionError,
    IdempotencyConflict,
    InvalidArgument,
    InvalidInput,
    NestedStepError,
    NonRetryableError,
    ReplayDiverged,
    RunCanceled,
    RunFailed,
    RunFinished,
    RunNotFound,
    RunNotRetryable,
    ScheduleNotFound,
    SchemaTooNew,
    StepAttemptsExceeded,
    StepError,
    StepFailed,
    StepNameError,
    StepNotAwaited,
    StepNotCallable,
    StepNotFound,
    StepResultError,
    StepTimeout,
    StepwiseError,
    UnknownWorkflow,
    WaitTimeout,
    WriteRefused,
)
from stepwise.loader import load_app
from stepwise.worker.worker import Worker

__version__ = metadata.version("stepwise-workflows")
"""The installed distribution's version (``stepwise`` on PyPI is another project's name)."""

__all__ = [
    "NO_RETRY",
    "AmbiguousRunId",
    "ChildHandle",
    "ChildWorkflowFailed",
    "ChildWorkflowTimeout",
    "Client",
    "ConfigurationError",
    "CrashLoop",
    "DatabaseDamaged",
    "DatabaseUnavailable",
    "DeadlineExceeded",
    "DefinitionError",
    "IdempotencyConflict",
    "InvalidArgument",
    "InvalidInput",
    "LogEntry",
    "NestedStepError",
    "NonRetryableError",
    "Page",
    "Registry",
    "ReplayDiverged",
    "RetryPolicy",
    "Run",
    "RunAttempt",
    "RunCanceled",
    "RunFailed",
    "RunFinished",
    "RunHandle",
    "RunNotFound",
    "RunNotRetryable",
    "RunStatus",
    "ScheduleNotFound",
    "SchemaTooNew",
    "Signal",
    "Step",
    "StepAttemptsExceeded",
    "StepError",
    "StepFailed",
    "StepNameError",
    "StepNotAwaited",
    "StepNotCallable",
    "StepNotFound",
    "StepResultError",
    "StepStatus",
    "StepTimeout",
    "StepwiseError",
    "UnknownWorkflow",
    "WaitTimeout",
    "Worker",
    "WorkflowContext",
    "WorkflowDefinition",
    "WriteRefused",
    "__version__",
    "default_registry",
    "load_app",
    "workflow",
]
