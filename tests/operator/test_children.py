"""Child runs as WorkflowRuns, with the real API server, controller-manager, Postgres, worker
and operator processes: each child run a WorkflowRun's steps start appears as a WorkflowRun
of its own, owned by its parent's and labelled with its name; deleting the parent cancels the
children's runs and removes their WorkflowRuns."""

from __future__ import annotations

from typing import Any

import pytest

from harness.processes import wait_until
from stepwise.backends.base import RunStatus
from stepwise.operator import models
from tests.operator.conftest import Database, OperatorHarness
from tests.operator.test_lifecycle import Worker

pytestmark = [pytest.mark.kube, pytest.mark.postgres]


def children_of(op: OperatorHarness, parent: str) -> list[dict[str, Any]]:
    found = op.kube.kubectl_json(
        "get", "wfr", "-n", op.namespace, "-l", f"{models.PARENT_LABEL}={parent}"
    )
    items: list[dict[str, Any]] = found["items"]
    return sorted(items, key=lambda item: item["metadata"]["name"])


def test_a_child_run_is_a_workflowrun_owned_by_its_parent(
    operator: OperatorHarness, worker: Worker, database: Database
) -> None:
    op = operator
    worker()
    op.start()
    parent = op.apply("family-1", {"workflow": "family", "input": {"children": [
        {"echo": "a"}, {"echo": "b"},
    ]}})  # fmt: skip
    op.wait_phase("family-1", "Succeeded")
    assert database.run(parent["metadata"]["uid"]).output == ["a", "b"]

    children = wait_until(
        lambda: (lambda found: found if len(found) == 2 else None)(children_of(op, "family-1")),
        timeout=30,
        what="two child WorkflowRuns",
    )
    steps = {s.key: s.child_id for s in database.steps(parent["metadata"]["uid"])}
    for child in children:
        meta = child["metadata"]
        run_id = meta["annotations"][models.RUN_ID_ANNOTATION]
        assert run_id in steps.values()
        assert meta["name"] == f"family-1-{run_id[:8]}"
        (owner,) = meta["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == (
            models.KIND, "family-1", parent["metadata"]["uid"],
        )  # fmt: skip
        assert child["spec"]["workflow"] == "family-child"
        status = op.wait_phase(meta["name"], "Succeeded")
        assert status["runId"] == run_id
        assert database.run(run_id).parent_id == parent["metadata"]["uid"]
    # kubectl get wfr lists them beside their parent.
    names = [row[0] for row in op.table()[1:]]
    assert sorted(names) == sorted(["family-1", *(c["metadata"]["name"] for c in children)])
    # Only the parent's run was started by the operator: the children's are its steps'.
    assert len(database.runs("family")) == 1
    assert len(database.runs("family-child")) == 2


def test_deleting_the_parent_cancels_and_removes_its_children(
    operator: OperatorHarness, worker: Worker, database: Database
) -> None:
    op = operator
    worker()
    op.start()
    parent = op.apply("family-2", {"workflow": "family", "input": {"children": [
        {"echo": "a", "sleep": 3600}, {"echo": "b", "sleep": 3600},
    ]}})  # fmt: skip
    uid = parent["metadata"]["uid"]
    children = wait_until(
        lambda: (lambda found: found if len(found) == 2 else None)(children_of(op, "family-2")),
        timeout=60,
        what="two child WorkflowRuns",
    )
    run_ids = [c["metadata"]["annotations"][models.RUN_ID_ANNOTATION] for c in children]
    for child in children:
        op.wait_phase(child["metadata"]["name"], "Sleeping")

    op.kubectl("delete", "wfr", "family-2", "--timeout=60s")

    assert database.run(uid).status is RunStatus.CANCELED
    assert [database.run(r).status for r in run_ids] == [RunStatus.CANCELED] * 2
    wait_until(
        lambda: not children_of(op, "family-2"),
        timeout=60,
        what="the garbage collector to delete the children's WorkflowRuns",
    )
