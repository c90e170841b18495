"""A user's workflow module with typed steps, and a workflow with a typed input and output.
``test_typed_results`` and ``test_typed_io`` run it on both backends, in this process and in
worker processes they kill, and type-check it with ``mypy --strict``: every ``assert_type``
below holds for mypy, and at run time the same values have those types, on the first run and
on replay."""

from __future__ import annotations

import dataclasses
import enum
import os
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, assert_type
from uuid import UUID

from pydantic import BaseModel

from stepwise import NO_RETRY, Client, RunHandle, WorkflowContext, workflow

SEEN: list[list[Any]] = []
"""What each execution of ``typed-invoice`` received from its steps."""


class Status(enum.Enum):
    PAID = "paid"
    DUE = "due"


class Invoice(BaseModel):
    id: UUID
    total: Decimal
    issued: datetime
    status: Status


@dataclasses.dataclass
class Line:
    sku: str
    quantity: int


INVOICE_ID = UUID("12345678-1234-5678-1234-567812345678")
ISSUED = datetime(2024, 5, 17, 9, 30, tzinfo=UTC)


def fetch_invoice(invoice_id: UUID) -> Invoice:
    return Invoice(id=invoice_id, total=Decimal("19.90"), issued=ISSUED, status=Status.DUE)


async def fetch_lines(count: int) -> list[Line]:
    return [Line(f"sku-{n}", n + 1) for n in range(count)]


def issued_at() -> datetime:
    return ISSUED


def totals() -> dict[str, Decimal]:
    return {"net": Decimal("16.72"), "tax": Decimal("3.18")}


def status_of(paid: bool) -> Status:
    return Status.PAID if paid else Status.DUE


def pair() -> tuple[int, UUID]:
    return 1, INVOICE_ID


def maybe() -> Line | None:
    return None


async def typed_steps(ctx: WorkflowContext[Any]) -> list[Any]:
    invoice = await ctx.step.run("invoice", fetch_invoice, INVOICE_ID)
    assert_type(invoice, Invoice)
    lines = await ctx.step.run("lines", fetch_lines, 2)
    assert_type(lines, list[Line])
    issued = await ctx.step.run("issued", issued_at)
    assert_type(issued, datetime)
    sums = await ctx.step.run("totals", totals)
    assert_type(sums, dict[str, Decimal])
    status = await ctx.step.run("status", status_of, paid=True)
    assert_type(status, Status)
    first = await ctx.step.run("pair", pair)
    assert_type(first, tuple[int, UUID])
    nothing = await ctx.step.run("maybe", maybe)
    assert_type(nothing, Line | None)
    values = [invoice, lines, issued, sums, status, first, nothing]
    SEEN.append(values)
    return values


def described(values: list[Any]) -> dict[str, Any]:
    """The values, and the names of their types as the workflow saw them."""
    return {"types": [type(v).__name__ for v in values], "values": values, "pid": os.getpid()}


@workflow("typed-invoice")
async def typed_invoice(ctx: WorkflowContext[Any]) -> dict[str, Any]:
    values = await typed_steps(ctx)
    if ctx.input and ctx.input.get("sleep"):
        await ctx.step.sleep("replay-after-this", 0.1)
    return described(values)


def wait_for_gate(gate: str, started: str) -> None:
    """Holds the run in flight until the test lets it go (it kills the worker meanwhile)."""
    Path(started).touch()
    while not Path(gate).exists():
        time.sleep(0.02)


@workflow("typed-crash")
async def typed_crash(ctx: WorkflowContext[Any]) -> dict[str, Any]:
    values = await typed_steps(ctx)
    await ctx.step.run("wait-for-gate", wait_for_gate, ctx.input["gate"], ctx.input["started"])
    return described(values)


class Order(BaseModel):
    id: UUID
    cents: int
    placed: datetime
    note: str = ""


@dataclasses.dataclass
class Receipt:
    order: UUID
    charged: Decimal
    status: Status


ORDERS: list[Order] = []
"""What each execution of ``typed-charge`` received as ``ctx.input``."""


def charge_card(cents: int) -> Decimal:
    if cents < 0:
        raise ValueError(f"cannot charge {cents} cents")
    return Decimal(cents) / 100


@workflow("typed-charge")
async def typed_charge(ctx: WorkflowContext[Order]) -> Receipt:
    order = ctx.input
    assert_type(order, Order)
    ORDERS.append(order)
    charged = await ctx.step.run("charge", charge_card, order.cents, retry=NO_RETRY)
    if order.note == "sleep":
        await ctx.step.sleep("replay-after-this", 0.1)
    elif order.note.startswith("gate:"):  # gate:GATE|STARTED: held until the test says
        gate, started = order.note.removeprefix("gate:").split("|")
        await ctx.step.run("wait-for-gate", wait_for_gate, gate, started)
    return Receipt(order.id, charged, Status.PAID)


async def charge_and_wait(client: Client, order: Order) -> Receipt:
    """What a caller writes: the handle knows the workflow's output type."""
    run = await client.start(typed_charge, order)
    assert_type(run, RunHandle[Receipt])
    receipt = await run.result(timeout=60)
    assert_type(receipt, Receipt)
    return receipt
