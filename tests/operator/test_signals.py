"""Signaling a WorkflowRun with kubectl alone: a ``WorkflowSignal`` resource, with the real API
server, the real operator (under the chart's RBAC), Postgres and a worker.

The operator sends the signal once (its uid is the idempotency key, so an operator restarted
after sending stores nothing twice), makes the WorkflowRun its owner, and says ``Delivered``
in its status; ``kubectl describe wfr`` lists the signal among the run's Events; a signal to
a finished run says ``Refused``; a signal sent before its WorkflowRun exists waits for it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from harness.processes import wait_until
from harness.workers import Proc
from stepwise import Client, Signal, StepStatus
from stepwise.operator import signal_models
from tests.operator.conftest import Database, OperatorHarness

pytestmark = [pytest.mark.kube, pytest.mark.postgres]


def send(op: OperatorHarness, name: str, run: str, signal: str, payload: Any) -> None:
    manifest = {
        "apiVersion": "stepwise.dev/v1alpha1",
        "kind": signal_models.KIND,
        "metadata": {"name": name},
        "spec": {"run": run, "signal": signal, "payload": payload},
    }
    op.kube.apply(json.dumps(manifest), namespace=op.namespace)


def signal_object(op: OperatorHarness, name: str) -> dict[str, Any]:
    found: dict[str, Any] = op.kube.kubectl_json("get", "wfsig", name, "-n", op.namespace)
    return found


def wait_signal_phase(op: OperatorHarness, name: str, phase: str) -> dict[str, Any]:
    found: dict[str, Any] = wait_until(
        lambda: (lambda o: o if (o.get("status") or {}).get("phase") == phase else None)(
            signal_object(op, name)
        ),
        timeout=60,
        interval=0.1,
        what=f"WorkflowSignal {name} to be {phase}",
    )
    return found


def stored_signals(url: str, run_id: str) -> list[Signal]:
    async def read() -> list[Signal]:
        async with Client.connect(url) as client:
            return await client.signals(run_id)

    return asyncio.run(read())


def test_a_workflow_signal_reaches_the_parked_run_once(
    operator: OperatorHarness,
    worker: Callable[..., Proc],
    database: Database,
) -> None:
    operator.start()
    worker()
    uid = operator.apply("needs-approval", {"workflow": "approval"})["metadata"]["uid"]
    wait_until(
        lambda: any(
            s.key == "approve" and s.status is StepStatus.SLEEPING for s in database.steps(uid)
        ),
        timeout=60,
        what="the run to park on its wait for the signal",
    )

    send(operator, "approve-it", "needs-approval", "approve", {"by": "ada"})
    delivered = wait_signal_phase(operator, "approve-it", "Delivered")
    assert delivered["status"]["runId"] == uid
    assert delivered["status"]["sequence"] == 1
    owners = delivered["metadata"]["ownerReferences"]
    assert [(o["kind"], o["name"], o["uid"]) for o in owners] == [
        ("WorkflowRun", "needs-approval", uid)
    ]
    status = operator.wait_phase("needs-approval", "Succeeded")
    assert status["output"] == {"approved": {"by": "ada"}}
    assert "SignalReceived" in operator.reasons("needs-approval")
    described = operator.kubectl("describe", "wfr", "needs-approval")
    assert "signal 'approve' #1 from WorkflowSignal approve-it" in described
    table = operator.kubectl("get", "wfsig", "approve-it")
    assert table.split("\n")[1].split()[:3] == ["approve-it", "needs-approval", "approve"]

    # A restarted operator does not send it again; a signal to the finished run is refused.
    operator.stop()
    operator.start()
    send(operator, "too-late", "needs-approval", "approve", "again")
    refused = wait_signal_phase(operator, "too-late", "Refused")
    assert "has finished (succeeded)" in refused["status"]["message"]
    signals = stored_signals(operator.database_url, uid)
    assert [(s.payload, s.delivered_to) for s in signals] == [({"by": "ada"}, "approve")]

    # Deleting the WorkflowRun deletes its signals (they are owned by it).
    operator.kubectl("delete", "wfr", "needs-approval")
    wait_until(
        lambda: "approve-it" not in operator.kubectl("get", "wfsig", "-o", "name"),
        timeout=60,
        what="the WorkflowRun's signals to be garbage-collected",
    )


def test_a_signal_sent_before_its_workflow_run_exists_waits_for_it(
    operator: OperatorHarness,
    worker: Callable[..., Proc],
    database: Database,
) -> None:
    operator.start()
    send(operator, "early", "later-run", "approve", 7)
    pending = wait_signal_phase(operator, "early", "Pending")
    assert "no WorkflowRun 'later-run'" in pending["status"]["message"]
    worker()
    operator.apply("later-run", {"workflow": "approval"})
    wait_signal_phase(operator, "early", "Delivered")
    assert operator.wait_phase("later-run", "Succeeded")["output"] == {"approved": 7}
