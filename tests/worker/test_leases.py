"""The heartbeat stands alone: given a backend, an id, a lease, what is held and whom to tell,
it renews the held leases and hands the renewed and the lost ones over, with no worker around
it."""

from __future__ import annotations

import time

from stepwise.backends.base import Backend
from stepwise.client.client import Client
from stepwise.worker.leases import Heartbeat

LEASE = 30.0


async def test_a_beat_renews_what_is_held_and_hands_over_what_was_lost(backend: Backend) -> None:
    client = Client(backend)
    kept = await client.start("chore")
    canceled = await client.start("chore")
    claimed = {c.run.id: c.lease_token for c in await backend.claim_runs("w1", ["chore"], 2, LEASE)}
    assert set(claimed) == {kept.id, canceled.id}
    await client.cancel(canceled.id)
    lost: list[set[str]] = []
    renewed: list[tuple[set[str], float]] = []

    heartbeat = Heartbeat(
        backend,
        "w1",
        LEASE,
        held=lambda: list(claimed.values()),
        lose=lost.append,
        renewed=lambda tokens, sent_at: renewed.append((tokens, sent_at)),
    )
    before = time.monotonic()
    await heartbeat.beat()

    assert lost == [{claimed[canceled.id]}]
    [(tokens, sent_at)] = renewed
    assert tokens == {claimed[kept.id]}
    assert before <= sent_at <= time.monotonic()
    assert heartbeat.interval == LEASE / 3
