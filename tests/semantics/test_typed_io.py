"""Typed workflow inputs and outputs: ``async def charge(ctx: WorkflowContext[Order]) ->
Receipt`` gets an ``Order`` as ``ctx.input`` (on the first run and on replay, and on another
worker after a SIGKILL), and ``await client.start(charge, order)`` is a ``RunHandle[Receipt]``
whose ``result()`` is a ``Receipt``. A bad input is refused by ``start`` before anything is
stored when the client has the workflow object, and fails the run at once, naming the workflow
and the field, when it was started by name. Starting by name keeps plain JSON. Both backends."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from harness.workers import Procs, async_wait_until
from stepwise import (
    Client,
    InvalidInput,
    Registry,
    RunFailed,
    RunStatus,
    StepStatus,
    WorkflowContext,
    workflow,
)
from stepwise.worker.inline import run_to_completion
from tests.conftest import Engine
from tests.semantics import typed_flows
from tests.semantics.typed_flows import Order, Receipt, Status

FLOWS = Path(typed_flows.__file__)
ORDER = Order(
    id=UUID("87654321-4321-8765-4321-876543218765"),
    cents=1990,
    placed=datetime(2024, 5, 17, 9, 30, tzinfo=UTC),
)
RECEIPT = Receipt(ORDER.id, Decimal("19.9"), Status.PAID)


@pytest.fixture(autouse=True)
def _fresh_orders() -> None:
    typed_flows.ORDERS.clear()


@pytest.fixture
async def serving(engine: Engine) -> AsyncIterator[Engine]:
    """``engine`` with a worker serving ``typed-charge`` in this process."""
    engine.registry.add(typed_flows.typed_charge)
    stop = asyncio.Event()
    worker = asyncio.create_task(engine.worker().run(stop))
    yield engine
    stop.set()
    await worker


async def test_the_input_and_the_result_have_their_declared_types(serving: Engine) -> None:
    receipt = await typed_flows.charge_and_wait(serving.client, ORDER)
    assert (type(receipt), receipt) == (Receipt, RECEIPT)
    assert [type(order) for order in typed_flows.ORDERS] == [Order]
    assert typed_flows.ORDERS == [ORDER]


async def test_the_input_has_its_type_on_replay(serving: Engine) -> None:
    order = ORDER.model_copy(update={"note": "sleep"})
    run = await serving.client.start(typed_flows.typed_charge, order)
    assert await run.result(timeout=30) == RECEIPT
    assert (await serving.client.get(run.id)).claims == 2  # the second execution replayed
    seen = typed_flows.ORDERS
    assert seen == [order, order]
    assert {type(each) for each in seen} == {Order}


async def test_started_by_name_the_input_is_checked_by_the_worker_and_the_result_is_json(
    serving: Engine,
) -> None:
    run = await serving.client.start("typed-charge", ORDER.model_dump(mode="json"))
    assert await run.result(timeout=30) == {
        "order": str(ORDER.id),
        "charged": "19.9",
        "status": "paid",
    }
    assert typed_flows.ORDERS == [ORDER]  # the workflow got an Order all the same


async def test_a_model_given_by_name_is_stored_as_json(serving: Engine) -> None:
    run = await serving.client.start("typed-charge", ORDER)
    assert run.input == {
        "id": str(ORDER.id),
        "cents": 1990,
        "placed": "2024-05-17T09:30:00Z",
        "note": "",
    }
    assert (await run.result(timeout=30))["status"] == "paid"


@dataclasses.dataclass
class Point:
    x: int
    when: datetime


async def test_a_dataclass_input_of_an_untyped_workflow_is_stored_as_json(engine: Engine) -> None:
    @workflow("untyped-echo", registry=Registry())
    async def echo(ctx: Any) -> Any:
        return ctx.input

    when = datetime(2024, 1, 2, tzinfo=UTC)
    run = await engine.run(echo, Point(1, when))
    assert run.output == {"x": 1, "when": "2024-01-02T00:00:00Z"}


BAD = {"id": "not-a-uuid", "cents": "ten", "placed": "2024-05-17T09:30:00Z"}


async def test_start_refuses_a_bad_input_before_anything_is_stored(engine: Engine) -> None:
    with pytest.raises(InvalidInput) as refused:
        await engine.client.start(typed_flows.typed_charge, BAD)  # type: ignore[arg-type]
    message = str(refused.value)
    assert message.startswith("input of workflow 'typed-charge' does not match Order: ")
    assert "id: Input should be a valid UUID" in message
    assert "cents: Input should be a valid integer" in message
    assert "(got 'ten')" in message
    assert "errors.pydantic.dev" not in message
    assert await engine.client.list() == []


async def test_a_bad_input_started_by_name_fails_the_run_at_once(engine: Engine) -> None:
    engine.registry.add(typed_flows.typed_charge)
    started = await engine.client.start("typed-charge", {**BAD, "id": str(ORDER.id)})
    run = await run_to_completion(engine.client, engine.registry, started.id, timeout=30)
    assert run.status is RunStatus.FAILED
    assert run.error["type"] == "InvalidInput"
    assert run.error["message"].startswith("input of workflow 'typed-charge' does not match Order")
    assert "cents: Input should be a valid integer" in run.error["message"]
    assert (run.attempt, run.claims) == (1, 1)  # not retried
    assert await engine.client.steps(run.id) == []
    assert typed_flows.ORDERS == []


async def test_an_output_that_does_not_fit_its_declared_type_fails_the_run(
    engine: Engine,
) -> None:
    @workflow("typed-wrong-output", registry=Registry())
    async def wrong(ctx: WorkflowContext[Any]) -> int:
        return "not a number"  # type: ignore[return-value]

    run = await engine.run(wrong)
    assert run.status is RunStatus.FAILED
    assert run.error["type"] == "StepResultError"
    assert "<workflow result>" in run.error["message"]
    assert "does not match the declared return type int" in run.error["message"]


async def test_the_typed_result_comes_back_after_a_worker_is_killed(
    backend_url: str, procs: Procs, tmp_path: Path
) -> None:
    gate, started = tmp_path / "gate", tmp_path / "started"
    order = ORDER.model_copy(update={"note": f"gate:{gate}|{started}"})
    async with Client.connect(backend_url) as client:
        first = procs.worker(FLOWS, backend_url, lease=1, name="worker-1")
        run = await client.start(typed_flows.typed_charge, order)

        async def charged_and_held() -> bool:
            steps = {s.key: s.status for s in await client.steps(run.id)}
            held = "wait-for-gate" in steps and started.exists()
            return steps.get("charge") is StepStatus.COMPLETED and held

        await async_wait_until(
            charged_and_held, 60, lambda: f"the charge is stored, the gate holds\n{procs.tails()}"
        )
        first.kill()
        gate.touch()
        procs.worker(FLOWS, backend_url, lease=1, name="worker-2")
        receipt = await run.result(timeout=60)
        finished = await client.get(run.id)
        steps = {s.key: s for s in await client.steps(run.id)}
    assert (type(receipt), receipt) == (Receipt, RECEIPT)
    assert finished.claims == 2  # worker-2 replayed: the stored input became an Order there too
    assert steps["charge"].attempts == 1


async def test_a_failed_runs_result_raises_run_failed_naming_the_users_line(
    serving: Engine,
) -> None:
    run = await serving.client.start(
        typed_flows.typed_charge, ORDER.model_copy(update={"cents": -1})
    )
    with pytest.raises(RunFailed) as failed:
        await run.result(timeout=30)
    lines = FLOWS.read_text().splitlines()
    [line] = [n for n, text in enumerate(lines, 1) if 'raise ValueError(f"cannot charge' in text]
    assert str(failed.value).endswith(
        f"ValueError: cannot charge -1 cents at {os.path.relpath(FLOWS)}:{line} in charge_card"
    )
