"""``stepwise runs retry | fork | prune`` and ``worker --retention``, as a user types them:
each acts through the client and says what it did in one line; a run that cannot be retried,
a step the run does not hold and a duration that is not one are one line naming them."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stepwise import Client, RunStatus
from stepwise.backends.base import FinishRun, StepFinished, StepStatus
from tests.cli.conftest import Stepwise


async def finished_run(url: str, status: RunStatus) -> str:
    """A run of ``wf`` that completed step ``a`` and ended ``status``."""
    async with Client.connect(url) as client:
        run = await client.start("wf", {"n": 1})
        [claimed] = await client.backend.claim_runs("w", ["wf"], 1, 30.0)
        now = datetime.now(UTC)
        token = claimed.lease_token
        done = StepFinished(token, run.id, "a", StepStatus.COMPLETED, "1", None, 1, now, now)
        await client.backend.write([done, FinishRun(token, run.id, status)])
        return run.id


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'runs.db'}"


async def test_retry_starts_a_failed_run_again(stepwise: Stepwise, url: str) -> None:
    run_id = await finished_run(url, RunStatus.FAILED)
    retried = stepwise("runs", "retry", run_id, "--database-url", url)
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.strip() == f"run {run_id} pending (attempt 2)"
    again = stepwise("runs", "retry", run_id, "--database-url", url)
    assert again.returncode != 0
    assert (
        again.stderr.strip()
        .splitlines()[-1]
        .endswith(f"run {run_id} is pending: only a failed or canceled run can be retried")
    )


async def test_fork_names_the_new_run_and_refuses_an_unknown_step(
    stepwise: Stepwise, url: str
) -> None:
    run_id = await finished_run(url, RunStatus.SUCCEEDED)
    forked = stepwise("runs", "fork", run_id, "--from-step", "a", "--database-url", url)
    assert forked.returncode == 0, forked.stderr
    fork_id = forked.stdout.split()[1]
    async with Client.connect(url) as client:
        assert (await client.get(fork_id)).forked_from == run_id
    unknown = stepwise("runs", "fork", run_id, "--from-step", "b", "--database-url", url)
    assert unknown.returncode != 0
    assert "step 'b'" in unknown.stderr
    assert "its steps: 'a'" in unknown.stderr


async def test_prune_deletes_runs_older_than_the_age(stepwise: Stepwise, url: str) -> None:
    run_id = await finished_run(url, RunStatus.CANCELED)
    kept = stepwise("runs", "prune", "--older-than", "30d", "--database-url", url)
    assert (kept.returncode, kept.stdout.strip()) == (0, "pruned 0 run(s)"), kept.stderr
    deadline = time.monotonic() + 30
    while True:
        pruned = stepwise("runs", "prune", "--older-than", "1ms", "--database-url", url)
        assert pruned.returncode == 0, pruned.stderr
        if pruned.stdout.strip() == "pruned 1 run(s)" or time.monotonic() > deadline:
            break
    assert pruned.stdout.strip() == "pruned 1 run(s)"
    async with Client.connect(url) as client:
        assert await client.find(run_id) is None


@pytest.mark.parametrize("age", ["30 days", "0", "-5m", "nan", "1y"])
def test_a_bad_age_is_one_line_naming_the_option(stepwise: Stepwise, url: str, age: str) -> None:
    refused = stepwise("runs", "prune", "--older-than", age, "--database-url", url)
    assert refused.returncode == 2
    assert "--older-than" in refused.stderr


def test_the_worker_takes_its_retention_from_the_environment(stepwise: Stepwise) -> None:
    shown = stepwise("worker", "--help")
    flat = " ".join(shown.stdout.split())
    assert "--retention DURATION" in flat
    assert "env var: STEPWISE_RETENTION" in flat
    refused = stepwise("worker", "--app", "x.py", env={"STEPWISE_RETENTION": "forever"})
    assert refused.returncode == 2
    assert "'--retention' (env var: 'STEPWISE_RETENTION')" in refused.stderr
    assert "not 'forever'" in refused.stderr
