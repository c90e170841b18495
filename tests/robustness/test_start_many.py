"""``Client.start_many`` stores a batch of runs in one transaction (``Backend.create_runs``):
each item behaves as ``start`` would, idempotency keys per item, a key repeated inside the batch
starts one run, and a bad item stores nothing at all. Both backends."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from stepwise import Client, IdempotencyConflict, InvalidArgument, InvalidInput, RunStatus
from stepwise.backends.base import Backend, NewRun
from tests.conftest import Engine
from tests.semantics.typed_flows import Order, typed_charge


@pytest.fixture
def client(engine: Engine) -> Client:
    return engine.client


def new_run(n: int, key: str | None = None) -> NewRun:
    return NewRun(str(uuid.uuid4()), "batch", None, json.dumps({"n": n}), idempotency_key=key)


async def test_a_batch_is_stored_in_order_with_its_inputs(client: Client) -> None:
    handles = await client.start_many("batch", [{"n": i} for i in range(50)])
    assert [h.input for h in handles] == [{"n": i} for i in range(50)]
    assert len({h.id for h in handles}) == 50
    stored = {r.id: r for r in await client.list(limit=100)}
    assert {stored[h.id].input["n"] for h in handles} == set(range(50))
    assert {r.status for r in stored.values()} == {RunStatus.PENDING}


async def test_keys_are_honoured_per_item(client: Client) -> None:
    earlier = await client.start("batch", {"n": 1}, idempotency_key="k1")
    handles = await client.start_many(
        "batch", [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 2}], idempotency_keys=["k1", "k2", None, "k2"]
    )
    assert handles[0].id == earlier.id
    assert handles[1].id == handles[3].id  # one key, one run, even within the batch
    assert len({h.id for h in handles}) == 3
    assert len(await client.list(limit=100)) == 3


async def test_a_reused_key_with_another_input_is_refused(client: Client) -> None:
    earlier = await client.start("batch", {"n": 1}, idempotency_key="k1")
    with pytest.raises(IdempotencyConflict) as caught:
        await client.start_many("batch", [{"n": 5}, {"n": 9}], idempotency_keys=[None, "k1"])
    assert (caught.value.key, caught.value.run_id) == ("k1", earlier.id)


@pytest.mark.parametrize(
    ("inputs", "keys", "error"),
    [
        ([{"n": 1}, {"bad": "\x00"}], None, InvalidInput),
        ([{"n": 1}, {"n": 2}], ["ok", "x" * 300], InvalidArgument),
        ([{"n": 1}, {"n": 2}], ["only-one"], InvalidArgument),
    ],
    ids=["nul-input", "long-key", "keys-count"],
)
async def test_a_bad_item_stores_nothing(
    client: Client, inputs: list[object], keys: list[str | None] | None, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await client.start_many("batch", inputs, idempotency_keys=keys)
    assert await client.list() == []


async def test_a_typed_workflow_checks_every_input(client: Client) -> None:
    order = Order(id=uuid.uuid4(), cents=100, placed=datetime.now(UTC))
    with pytest.raises(InvalidInput):
        await client.start_many(typed_charge, [order, {"id": "not-a-uuid", "cents": 1}])
    assert await client.list() == []
    (handle,) = await client.start_many(typed_charge, [order])
    assert handle.input["cents"] == 100


async def test_an_empty_batch_stores_nothing(client: Client) -> None:
    assert await client.start_many("batch", []) == []


async def test_create_runs_answers_each_item_in_order(backend: Backend) -> None:
    (first, created), *_ = await backend.create_runs([new_run(0, "a")])
    assert created
    batch = [new_run(1), new_run(2, "a"), new_run(3, "b"), new_run(4, "b")]
    results = await backend.create_runs(batch)
    assert [c for _, c in results] == [True, False, True, False]
    assert results[0][0].id == batch[0].id
    assert results[1][0].id == first.id
    assert results[2][0].id == results[3][0].id == batch[2].id
    assert [r.input for r, _ in results] == [batch[0].input, first.input, *[batch[2].input] * 2]
