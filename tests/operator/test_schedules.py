"""``WorkflowSchedule`` with the real API server, the real operator (under the chart's RBAC)
and real workers: every tick makes one WorkflowRun, owned by the schedule and named after its
tick, whose run sees the tick as ``ctx.scheduled_at``; history is pruned to its limits;
``kubectl get wfs`` shows SCHEDULE, SUSPEND, ACTIVE, LAST SCHEDULE and NEXT; Forbid never lets
two runs overlap, Replace cancels the active run. Schedules tick every second (six fields,
seconds first), so each test lasts seconds."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

import pytest

from harness.processes import wait_until
from harness.workers import Proc
from stepwise.backends.base import RunStatus
from stepwise.operator import schedule_models
from tests.operator.conftest import Database, OperatorHarness

pytestmark = pytest.mark.kube


def apply_schedule(op: OperatorHarness, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    manifest = {
        "apiVersion": "stepwise.dev/v1alpha1",
        "kind": schedule_models.KIND,
        "metadata": {"name": name},
        "spec": spec,
    }
    op.kube.apply(json.dumps(manifest), namespace=op.namespace)
    found: dict[str, Any] = op.kube.kubectl_json("get", "wfs", name, "-n", op.namespace)
    return found


def owned_runs(op: OperatorHarness, schedule: str) -> list[dict[str, Any]]:
    listed = op.kube.kubectl_json(
        "get", "wfr", "-n", op.namespace, "-l", f"{schedule_models.SCHEDULE_LABEL}={schedule}"
    )
    items: list[dict[str, Any]] = listed["items"]
    return items


def delete_schedule(op: OperatorHarness, name: str) -> None:
    op.kubectl("delete", "wfs", name, "--wait=false", check=False)


def test_ticks_make_owned_runs_pruned_to_the_history_limit(
    operator: OperatorHarness,
    worker: Callable[..., Proc],
    database: Database,
) -> None:
    operator.start()
    worker()
    schedule = apply_schedule(
        operator, "every-second",
        {
            "schedule": "* * * * * *", "workflow": "chain", "input": {"steps": 1, "delay": 0},
            "successfulRunsHistoryLimit": 2,
        },
    )  # fmt: skip
    uid = schedule["metadata"]["uid"]
    wait_until(
        lambda: len([r for r in database.runs("chain") if r.finished]) >= 4,
        timeout=60, what="four ticks ran", interval=0.2,
    )  # fmt: skip

    def pruned() -> list[dict[str, Any]] | None:
        runs = owned_runs(operator, "every-second")
        return runs if len(runs) <= 3 else None

    kept = wait_until(
        pruned, timeout=30, what="history pruned to 2 succeeded (+ one in flight)", interval=0.2
    )
    status = operator.kube.kubectl_json("get", "wfs", "every-second", "-n", operator.namespace)
    assert status["status"]["lastScheduleTime"] is not None
    delete_schedule(operator, "every-second")

    for item in kept:
        meta = item["metadata"]
        [owner] = meta["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == (
            schedule_models.KIND,
            "every-second",
            uid,
        )
        tick = meta["annotations"][schedule_models.SCHEDULED_AT_ANNOTATION]
        assert meta["name"].startswith("every-second-")
        run = database.run(meta["uid"])
        assert run.scheduled_at is not None
        assert run.scheduled_at.strftime("%Y-%m-%dT%H:%M:%SZ") == tick
    runs = database.runs("chain")
    ticks = [run.scheduled_at for run in runs]
    assert None not in ticks
    assert len(set(ticks)) == len(ticks), "one run per tick"
    assert all(run.status is RunStatus.SUCCEEDED for run in runs if run.finished)


def test_kubectl_get_wfs_shows_the_schedule(operator: OperatorHarness) -> None:
    operator.start()
    apply_schedule(
        operator, "nightly",
        {"schedule": "0 3 * * *", "timeZone": "Europe/Paris", "workflow": "chain"},
    )  # fmt: skip
    wait_until(
        lambda: operator.kube.kubectl_json("get", "wfs", "nightly", "-n", operator.namespace)
        .get("status", {}).get("nextScheduleTime"),
        timeout=30, what="the next tick in the status",
    )  # fmt: skip
    header, row = operator.kubectl("get", "wfs").splitlines()
    assert header.split() == [
        "NAME",
        "SCHEDULE",
        "SUSPEND",
        "ACTIVE",
        "LAST",
        "SCHEDULE",
        "NEXT",
        "AGE",
    ]
    cells = row.split()  # LAST SCHEDULE is blank: no tick yet
    assert cells[:8] == ["nightly", "0", "3", "*", "*", "*", "false", "0"]
    assert cells[8].endswith(":00:00Z"), "NEXT: 3:00 in Paris, in UTC"
    assert cells[8][11:13] in ("01", "02")
    operator.kubectl("patch", "wfs", "nightly", "--type=merge", "-p", '{"spec":{"suspend":true}}')
    wait_until(
        lambda: "nextScheduleTime" not in operator.kube.kubectl_json(
            "get", "wfs", "nightly", "-n", operator.namespace).get("status", {}),
        timeout=30, what="a suspended schedule has no next tick",
    )  # fmt: skip
    delete_schedule(operator, "nightly")


@pytest.mark.parametrize("policy", ["Forbid", "Replace"])
def test_concurrency_policy(
    operator: OperatorHarness,
    worker: Callable[..., Proc],
    database: Database,
    policy: str,
) -> None:
    operator.start()
    worker()
    # Replace: a tick every 3 s, so a run has started (the operator's create handler) before
    # the next tick replaces it; a run lasts longer than that.
    every, delay = ("* * * * * *", 3) if policy == "Forbid" else ("*/3 * * * * *", 10)
    apply_schedule(
        operator, "slow",
        {
            "schedule": every, "workflow": "chain", "input": {"steps": 1, "delay": delay},
            "concurrencyPolicy": policy,
        },
    )  # fmt: skip
    if policy == "Forbid":
        wait_until(
            lambda: len([r for r in database.runs("chain") if r.finished]) >= 2,
            timeout=60, what="two runs ended", interval=0.2,
        )  # fmt: skip
        delete_schedule(operator, "slow")
        runs = sorted(database.runs("chain"), key=lambda r: r.created_at)
        for earlier, later in itertools.pairwise(runs):
            assert earlier.finished_at is not None
            assert later.created_at >= earlier.finished_at, "a run started while one was active"
    else:
        wait_until(
            lambda: any(r.status is RunStatus.CANCELED for r in database.runs("chain")),
            timeout=60, what="a run replaced (canceled)", interval=0.2,
        )  # fmt: skip
        delete_schedule(operator, "slow")
        assert not any(r.status is RunStatus.SUCCEEDED for r in database.runs("chain"))


def test_a_schedule_the_operator_cannot_read_says_why(operator: OperatorHarness) -> None:
    operator.start()
    apply_schedule(
        operator,
        "bad-zone",
        {"schedule": "0 3 * * *", "timeZone": "Not/AZone", "workflow": "chain"},
    )

    def message() -> str | None:
        found = operator.kube.kubectl_json("get", "wfs", "bad-zone", "-n", operator.namespace)
        text: str | None = found.get("status", {}).get("message")
        return text

    said = wait_until(message, timeout=30, what="the status says what is wrong")
    assert "'Not/AZone' is not a known IANA time zone" in said

    def reasons() -> set[str]:
        events = operator.kube.kubectl_json(
            "get", "events", "-n", operator.namespace, "--field-selector",
            "involvedObject.name=bad-zone,involvedObject.kind=WorkflowSchedule",
        )  # fmt: skip
        return {event["reason"] for event in events["items"]}

    wait_until(lambda: "InvalidSchedule" in reasons(), timeout=30, what="an InvalidSchedule event")
    delete_schedule(operator, "bad-zone")
