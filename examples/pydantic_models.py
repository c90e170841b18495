"""Pydantic models in and out: a validated input, typed step results, a typed output.

stepwise run examples/pydantic_models.py quote-order \
    --input '{"customer": "ada", "lines": [{"sku": "pen", "quantity": 3}]}'

The input is validated into ``Order`` before anything is stored (a bad one is refused at the
start, naming the field). ``price`` declares ``-> Quote``, so the workflow gets a ``Quote``
back, after the JSON round trip, on the first run as on replay, and ``mypy`` types it so.
``Decimal`` and ``datetime`` fields travel as JSON strings and come back as themselves.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from pydantic import BaseModel, Field

from stepwise import WorkflowContext, workflow

PRICES = {"pen": Decimal("1.50"), "notebook": Decimal("4.25")}


class Line(BaseModel):
    sku: str
    quantity: int = Field(gt=0)


class Order(BaseModel):
    customer: str
    lines: list[Line]


class Quote(BaseModel):
    customer: str
    total: Decimal
    quoted_at: datetime


class Confirmation(BaseModel):
    customer: str
    total: Decimal
    reference: str


def price(order: Order) -> Quote:
    total = sum((PRICES[line.sku] * line.quantity for line in order.lines), Decimal(0))
    return Quote(customer=order.customer, total=total, quoted_at=datetime.now(UTC))


def reserve(quote: Quote) -> str:
    return f"{quote.customer}-{quote.total}"


@workflow("quote-order")
async def quote_order(ctx: WorkflowContext[Order]) -> Confirmation:
    quote = await ctx.step.run("price", price, ctx.input)
    assert isinstance(quote, Quote)  # a Quote, not a dict: the step's declared return type
    reference = await ctx.step.run("reserve", reserve, quote)
    return Confirmation(customer=quote.customer, total=quote.total, reference=reference)
