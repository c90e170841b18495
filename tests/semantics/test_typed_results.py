"""A step function that declares its return type gives the workflow that type, after the
JSON round trip, on the first run and on replay alike (after a durable sleep, and after a
SIGKILLed worker's run is taken over by another process). ``mypy --strict`` sees the same
types in a user's module (``typed_flows``). Without a declaration the workflow gets plain
JSON, and what pydantic serialises is accepted; NaN and infinity are still refused."""

from __future__ import annotations

import dataclasses
import enum
import math
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from harness.workers import Procs, async_wait_until
from stepwise import Client, Registry, RunStatus, StepStatus, workflow
from tests.conftest import Engine
from tests.semantics import typed_flows
from tests.semantics.typed_flows import INVOICE_ID, ISSUED, Invoice, Line, Status

ROOT = Path(__file__).resolve().parents[2]
FLOWS = Path(typed_flows.__file__)
TYPED_STEPS = ["invoice", "lines", "issued", "totals", "status", "pair", "maybe"]
EXPECTED = [
    Invoice(id=INVOICE_ID, total=Decimal("19.90"), issued=ISSUED, status=Status.DUE),
    [Line("sku-0", 1), Line("sku-1", 2)],
    ISSUED,
    {"net": Decimal("16.72"), "tax": Decimal("3.18")},
    Status.PAID,
    (1, INVOICE_ID),
    None,
]
EXPECTED_TYPES = ["Invoice", "list", "datetime", "dict", "Status", "tuple", "NoneType"]


def assert_typed(seen: list[Any]) -> None:
    assert seen == EXPECTED
    assert [type(v).__name__ for v in seen] == EXPECTED_TYPES
    assert {type(line) for line in seen[1]} == {Line}
    assert {type(v) for v in seen[3].values()} == {Decimal}


@pytest.fixture(autouse=True)
def _fresh_seen() -> None:
    typed_flows.SEEN.clear()


def test_mypy_strict_sees_typed_step_results(tmp_path: Path) -> None:
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", str(FLOWS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    snippet = tmp_path / "user_code.py"
    snippet.write_text(
        "from typing import Any\n"
        "from stepwise import Client, WorkflowContext\n"
        "from tests.semantics.typed_flows import INVOICE_ID, fetch_invoice, fetch_lines\n"
        "from tests.semantics.typed_flows import Order, typed_charge\n"
        "async def flow(ctx: WorkflowContext[Any]) -> None:\n"
        "    reveal_type(await ctx.step.run('a', fetch_invoice, INVOICE_ID))\n"
        "    reveal_type(ctx.step.run('b', fetch_lines, 2))\n"
        "async def caller(client: Client, order: Order) -> None:\n"
        "    reveal_type(typed_charge)\n"
        "    reveal_type(await client.start(typed_charge, order))\n"
        "    reveal_type(await (await client.start(typed_charge, order)).result())\n"
        "    reveal_type(await client.start('typed-charge', {'cents': 1}))\n"
        "    await client.start(typed_charge, {'cents': 1})\n"
    )
    revealed = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", str(snippet)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = revealed.stdout.splitlines()
    notes = [line.split("note: ", 1)[1] for line in lines if "note: " in line]
    assert notes == [
        'Revealed type is "tests.semantics.typed_flows.Invoice"',
        'Revealed type is "typing.Awaitable[list[tests.semantics.typed_flows.Line]]"',
        'Revealed type is "stepwise.core.definitions.WorkflowDefinition['
        'tests.semantics.typed_flows.Order, tests.semantics.typed_flows.Receipt]"',
        'Revealed type is "stepwise.client.client.RunHandle[tests.semantics.typed_flows.Receipt]"',
        'Revealed type is "tests.semantics.typed_flows.Receipt"',
        'Revealed type is "stepwise.client.client.RunHandle[Any]"',
    ], revealed.stdout
    # A dict where the workflow declares an Order is caught by the type checker.
    errors = [line for line in lines if ": error: " in line]
    assert len(errors) == 1, revealed.stdout
    # (mypy's cache may name the file of an earlier identical snippet: match its line only)
    assert "user_code.py:13: error: " in errors[0], revealed.stdout


async def test_declared_types_come_back_on_the_first_run(engine: Engine) -> None:
    run = await engine.run(typed_flows.typed_invoice)
    assert run.status is RunStatus.SUCCEEDED, run.error
    [first] = typed_flows.SEEN
    assert_typed(first)
    assert run.output["types"] == EXPECTED_TYPES
    assert run.output["values"][0] == {
        "id": str(INVOICE_ID),
        "total": "19.90",
        "issued": "2024-05-17T09:30:00Z",
        "status": "due",
    }


async def test_declared_types_come_back_on_replay(engine: Engine) -> None:
    run = await engine.run(typed_flows.typed_invoice, {"sleep": True})
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.claims == 2  # the second execution read every step back from the database
    first, replayed = typed_flows.SEEN
    assert_typed(first)
    assert_typed(replayed)
    steps = {s.key: s for s in await engine.client.steps(run.id)}
    assert {steps[key].attempts for key in TYPED_STEPS} == {1}


async def test_declared_types_come_back_on_another_worker_after_a_crash(
    backend_url: str, procs: Procs, tmp_path: Path
) -> None:
    gate, started = tmp_path / "gate", tmp_path / "started"
    async with Client.connect(backend_url) as client:
        first = procs.worker(FLOWS, backend_url, lease=1, name="worker-1")
        run = await client.start("typed-crash", {"gate": str(gate), "started": str(started)})

        async def typed_steps_stored_and_gate_waiting() -> bool:
            steps = await client.steps(run.id)
            done = {s.key for s in steps if s.status is StepStatus.COMPLETED}
            # The gate step's start is stored too, so its two attempts are both on record.
            waiting = "wait-for-gate" in {s.key for s in steps}
            return done == set(TYPED_STEPS) and waiting and started.exists()

        await async_wait_until(
            typed_steps_stored_and_gate_waiting,
            60,
            lambda: f"the typed steps are stored and the gate step runs\n{procs.tails()}",
        )
        first.kill()
        gate.touch()
        second = procs.worker(FLOWS, backend_url, lease=1, name="worker-2")
        finished = await client.wait_finished(run.id, timeout=60)
        steps = {s.key: s for s in await client.steps(run.id)}

    assert finished.status is RunStatus.SUCCEEDED, procs.tails()
    assert finished.claims == 2
    assert finished.output["pid"] == second.pid  # the output is the replaying worker's
    assert finished.output["types"] == EXPECTED_TYPES
    assert {steps[key].attempts for key in TYPED_STEPS} == {1}  # replayed, not run again
    assert steps["wait-for-gate"].attempts == 2


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Reading:
    value: float


def not_a_number() -> Reading:
    return Reading(math.nan)


def declared_int() -> int:
    return "not a number"  # type: ignore[return-value]


async def test_untyped_results_accept_what_pydantic_serialises(engine: Engine) -> None:
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)

    @workflow("untyped-values", registry=Registry())
    async def untyped(ctx: Any) -> Any:
        return await ctx.step.run(
            "values",
            lambda: [when, UUID(int=1), Decimal("1.50"), Colour.RED, Reading(2.5), {3}],
        )

    run = await engine.run(untyped)
    assert run.status is RunStatus.SUCCEEDED, run.error
    assert run.output == [
        "2024-01-02T03:04:05Z",
        "00000000-0000-0000-0000-000000000001",
        "1.50",
        "red",
        {"value": 2.5},
        [3],
    ]


async def test_nan_is_refused_in_a_declared_type_too(engine: Engine) -> None:
    @workflow("typed-nan", registry=Registry())
    async def typed_nan(ctx: Any) -> Any:
        return await ctx.step.run("reading", not_a_number)

    run = await engine.run(typed_nan)
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error["type"] == "StepResultError"
    assert "step 'reading'" in run.error["message"]
    assert "Out of range float values are not JSON compliant" in run.error["message"]
    [step] = await engine.client.steps(run.id)
    assert (step.status, step.attempts) == (StepStatus.FAILED, 1)


async def test_a_result_that_does_not_match_its_declared_type_fails_the_step(
    engine: Engine,
) -> None:
    @workflow("typed-mismatch", registry=Registry())
    async def mismatch(ctx: Any) -> Any:
        return await ctx.step.run("count", declared_int)

    run = await engine.run(mismatch)
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error["type"] == "StepResultError"
    assert "step 'count'" in run.error["message"]
    assert "does not match the declared return type int" in run.error["message"]
    [step] = await engine.client.steps(run.id)
    assert (step.status, step.attempts) == (StepStatus.FAILED, 1)  # not retried
