"""A WorkflowRun's ``stepwise.dev/traceparent`` annotation: the operator starts the run in the
trace it names, so the workers' spans continue it; without it the run has no stored context
(the operator here does not trace, and need not for the annotation to count)."""

from __future__ import annotations

import json

import pytest

from stepwise.operator import models
from tests.operator.conftest import Database, OperatorHarness

pytestmark = [pytest.mark.kube, pytest.mark.postgres]

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _apply(op: OperatorHarness, name: str, annotations: dict[str, str]) -> None:
    manifest = {
        "apiVersion": models.API_VERSION,
        "kind": models.KIND,
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"workflow": "fan-out", "input": {"delays": [0]}},
    }
    op.kube.apply(json.dumps(manifest), namespace=op.namespace)


def test_the_annotation_is_the_parent_of_the_runs_trace(
    operator: OperatorHarness, database: Database
) -> None:
    operator.start()
    _apply(operator, "traced", {models.TRACEPARENT_ANNOTATION: TRACEPARENT})
    _apply(operator, "untraced", {})
    for name, expected in (("traced", TRACEPARENT), ("untraced", None)):
        status = operator.wait_status(name, lambda s: s.get("runId"), "a run started")
        run_id = status["runId"]
        stored = database._do(lambda c, r=run_id: c.backend.get_run(r))  # type: ignore[misc]
        assert stored is not None
        assert stored.traceparent == expected, operator.log()
