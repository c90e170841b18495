"""``stepwise runs signal RUN_ID NAME --data JSON``, as a user types it: the signal is kept for
the run's wait (one line says so), a repeated idempotency key sends nothing, and a finished
run or bad JSON is refused in one line that names it."""

from __future__ import annotations

from pathlib import Path

from stepwise import Client
from tests.cli.conftest import Stepwise


async def test_signal_sends_the_payload_once_per_key(stepwise: Stepwise, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    async with Client.connect(url) as client:
        run = await client.start("approval", {"order": 7})
    sent = stepwise(
        "runs", "signal", run.id[:8], "approve", "--data", '{"by": "ada"}',
        "--idempotency-key", "ticket-1", "--database-url", url,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.strip() == f"signal 'approve' #1 sent to run {run.id}"
    again = stepwise(
        "runs", "signal", run.id, "approve", "--data", '{"by": "bob"}',
        "--idempotency-key", "ticket-1", "--database-url", url,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    async with Client.connect(url) as client:
        signals = await client.signals(run.id)
        assert [(s.name, s.payload, s.delivered_to) for s in signals] == [
            ("approve", {"by": "ada"}, None)
        ]
        await client.cancel(run.id)
    refused = stepwise("runs", "signal", run.id, "approve", "--database-url", url)
    assert refused.returncode != 0
    assert (
        refused.stderr.strip()
        .splitlines()[-1]
        .endswith(f"run {run.id} has finished (canceled): signal 'approve' cannot be delivered")
    )
    bad = stepwise("runs", "signal", run.id, "approve", "--data", "{oops", "--database-url", url)
    assert bad.returncode != 0
    assert "not valid JSON" in bad.stderr
