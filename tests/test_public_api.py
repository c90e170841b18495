"""The public API is curated: what ``stepwise`` exports is pinned here, on purpose."""

from __future__ import annotations

import subprocess
import sys

import stepwise

PUBLIC = [
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


def test_all_is_pinned() -> None:
    assert stepwise.__all__ == PUBLIC
    for name in stepwise.__all__:
        assert hasattr(stepwise, name), name


def test_every_error_derives_from_stepwise_error() -> None:
    exported = [getattr(stepwise, n) for n in PUBLIC]
    errors = [e for e in exported if isinstance(e, type) and issubclass(e, BaseException)]
    assert len(errors) > 20
    for error in errors:
        assert issubclass(error, stepwise.StepwiseError), error


def test_import_needs_neither_kopf_nor_a_database_driver() -> None:
    code = (
        "import sys, stepwise; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('kopf', 'kubernetes', 'kubernetes_asyncio', 'asyncpg', 'psycopg', 'prometheus_client')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
