"""A warning on a run (conformance, both backends): stored only under the run's current lease,
kept after the run ends, replaced by a later one, and returned with the run everywhere."""

from __future__ import annotations

import json

from stepwise.backends.base import Backend, FinishRun, RunFilter, RunStatus
from tests.backends.conftest import BackendFactory
from tests.backends.test_conformance import LONG, SHORT, WF, claim_one, create, get, reclaimed


def _warning(message: str) -> str:
    return json.dumps({"type": "ReplayDiverged", "message": message})


async def test_a_warning_is_stored_under_the_lease_and_kept(backend: Backend) -> None:
    run = await create(backend)
    assert run.warning is None
    claimed = await claim_one(backend, lease=LONG)
    assert await backend.record_warning(claimed.lease_token, run.id, _warning("first"))
    assert await backend.record_warning(claimed.lease_token, run.id, _warning("second"))
    await backend.write([FinishRun(claimed.lease_token, run.id, RunStatus.SUCCEEDED, "1")])

    got = await get(backend, run.id)
    assert got.status is RunStatus.SUCCEEDED
    assert got.warning is not None
    assert json.loads(got.warning)["message"] == "second"
    (listed,) = await backend.list_runs(RunFilter(workflow=WF))
    assert listed.warning == got.warning


async def test_a_stale_holder_cannot_store_a_warning(backend_factory: BackendFactory) -> None:
    stale, fresh = await backend_factory(), await backend_factory()
    run = await create(stale)
    old = await claim_one(stale, lease=SHORT)
    new = await reclaimed(fresh)
    assert not await stale.record_warning(old.lease_token, run.id, _warning("stale"))
    assert not await stale.record_warning("not-a-token", run.id, _warning("garbage"))
    assert not await stale.record_warning(old.lease_token, "not-a-run", _warning("garbage"))
    assert (await get(fresh, run.id)).warning is None
    assert new.run.warning is None
