"""An idempotency key means one request: the same key with the same input returns the run it
started; with a different input it is refused with ``IdempotencyConflict`` (as Stripe refuses a
reused key with other parameters), naming the key and its run, and nothing is stored. Keys are
scoped per workflow: another workflow's run may use the same key."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from harness.workers import Procs
from stepwise import Client, IdempotencyConflict


@pytest.fixture
async def client(backend_url: str) -> AsyncIterator[Client]:
    async with Client.connect(backend_url) as opened:
        yield opened


async def test_the_same_key_and_input_return_the_run_it_started(client: Client) -> None:
    first = await client.start(
        "charge", {"cents": 100, "card": {"last4": "4242", "ok": True}}, idempotency_key="order-1"
    )
    # The same value, however spelled: key order, number spelling.
    again = await client.start(
        "charge", {"card": {"ok": True, "last4": "4242"}, "cents": 100.0}, idempotency_key="order-1"
    )
    assert again.id == first.id
    assert len(await client.list()) == 1


@pytest.mark.parametrize(
    "other",
    [{"cents": 200}, {"cents": True}, {"cents": "100"}, {"cents": 100, "extra": None}, None],
    ids=["value", "bool-for-number", "string-for-number", "extra-key", "no-input"],
)
async def test_the_same_key_with_another_input_is_refused(client: Client, other: object) -> None:
    first = await client.start("charge", {"cents": 100}, idempotency_key="order-1")
    with pytest.raises(IdempotencyConflict) as caught:
        await client.start("charge", other, idempotency_key="order-1")
    assert (caught.value.key, caught.value.run_id) == ("order-1", first.id)
    assert "order-1" in str(caught.value)
    assert first.id in str(caught.value)
    (only,) = await client.list()
    assert only.id == first.id
    assert only.input == {"cents": 100}


async def test_another_workflow_may_use_the_same_key(client: Client) -> None:
    charge = await client.start("charge", {"cents": 100}, idempotency_key="order-1")
    refund = await client.start("refund", {"cents": 5}, idempotency_key="order-1")
    assert charge.id != refund.id


def test_the_cli_reports_a_reused_key_in_one_line(backend_url: str, procs: Procs) -> None:
    args = ["start", "robust-echo", "--idempotency-key", "order-7", "--database-url", backend_url]
    first = procs.cli(*args, "--input", json.dumps({"n": 1}))
    assert first.returncode == 0, first.stderr
    same = procs.cli(*args, "--input", json.dumps({"n": 1}))
    assert same.returncode == 0, same.stderr
    assert same.stdout == first.stdout
    other = procs.cli(*args, "--input", json.dumps({"n": 2}))
    assert other.returncode == 2
    (line,) = other.stderr.strip().splitlines()
    assert "idempotency key 'order-7' already started run" in line
    assert "with a different input" in line
