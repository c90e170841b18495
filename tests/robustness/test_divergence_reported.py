"""A replay that diverges is reported where an operator looks, by real worker processes.

Worker ``v1`` runs ``charge-v1`` and dies (SIGKILL) while ``notify`` waits for its gate.
Worker ``v2`` (the next release, whose step is named ``charge-v2``) takes the run over: the
stored ``charge-v1`` is never requested while ``charge-v2`` is new. By default (``warn``) the
run finishes and carries a warning, shown by ``stepwise runs show``, and the worker's
``/metrics`` counts it; with ``STEPWISE_ON_DIVERGENCE=fail`` the run fails with
``ReplayDiverged``.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import pytest

from harness.workers import Procs, async_wait_until
from stepwise import Client, RunStatus, StepStatus
from tests.robustness.step_flows import DEPLOY_VARIABLE

APP = Path(__file__).with_name("step_flows.py")


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


@pytest.mark.parametrize("mode", ["warn", "fail"])
async def test_a_renamed_step_is_reported_by_the_next_release(
    backend_url: str, procs: Procs, tmp_path: Path, unused_tcp_port: int, mode: str
) -> None:
    ledger, gate = tmp_path / "ledger", tmp_path / "gate"
    old = procs.worker(APP, backend_url, name="v1", env={DEPLOY_VARIABLE: "v1"}, ready=True)
    async with Client.connect(backend_url) as client:
        run = await client.start("robust-deployed", {"ledger": str(ledger), "gate": str(gate)})

        async def charged_and_notifying() -> bool:
            steps = {s.key: s.status for s in await client.steps(run.id)}
            return steps.get("charge-v1") is StepStatus.COMPLETED and "notify" in steps

        await async_wait_until(charged_and_notifying, 30, lambda: f"v1 charged\n{old.tail()}")
        old.kill()
        gate.touch()
        env = {DEPLOY_VARIABLE: "v2"} | (
            {"STEPWISE_ON_DIVERGENCE": "fail"} if mode == "fail" else {}
        )
        new = procs.worker(
            APP,
            backend_url,
            name="v2",
            env=env,
            args=["--health-port", str(unused_tcp_port), "--health-host", "127.0.0.1"],
        )
        finished = await client.wait_finished(run.id, timeout=60)

    shown = await asyncio.to_thread(
        procs.cli, "runs", "show", run.id, "--json", "--database-url", backend_url
    )
    assert shown.returncode == 0, shown.stderr
    warning = json.loads(shown.stdout)["warning"]
    assert warning["type"] == "ReplayDiverged", shown.stdout
    assert (warning["missing"], warning["new"]) == (["charge-v1"], ["charge-v2"])
    assert "charge-v1" in new.log()  # the worker's own warning line
    counted = await asyncio.to_thread(_metric, unused_tcp_port, "stepwise_replay_divergences_total")
    assert counted == 1
    if mode == "warn":
        assert finished.status is RunStatus.SUCCEEDED, new.tail()
    else:
        assert finished.status is RunStatus.FAILED, new.tail()
        assert finished.error is not None
        assert finished.error["type"] == "ReplayDiverged"
