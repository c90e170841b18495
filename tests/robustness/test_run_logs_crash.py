"""Logs per run survive a SIGKILL of their worker, and a replay does not repeat them.

The first worker process runs ``a``, ``b`` and ``c`` in parallel; ``a`` and ``b`` return at
once, ``c`` waits for a gate. Once ``a`` and ``b`` are stored and ``c``'s lines are too, the
worker is SIGKILLed; a second one takes the run over and finishes it. The lines of ``a`` and
``b`` (stored with their results) are there once, from the first process; ``c`` ran twice, and
its lines are kept per attempt: attempt 1 from the first process, attempt 2 from the second.
The body's lines are stored once although the body ran in both processes.
"""

from __future__ import annotations

from pathlib import Path

from harness.workers import Procs, async_wait_until
from stepwise import Client, RunStatus, StepStatus

FLOWS = Path(__file__).with_name("log_flows.py")


async def test_logs_survive_sigkill_and_a_replay_repeats_none(
    backend_url: str, procs: Procs, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    async with Client.connect(backend_url) as client:
        first = procs.worker(FLOWS, backend_url, lease=1, name="worker-1")
        run = await client.start("logged-crash", {"gate": str(gate)})

        async def ready_to_kill() -> bool:
            done = {s.key for s in await client.steps(run.id) if s.status is StepStatus.COMPLETED}
            c_logged = any(e.step == "c" for e in await client.logs(run.id))
            return done == {"a", "b"} and c_logged

        await async_wait_until(
            ready_to_kill, 60, lambda: f"a and b stored, c's lines stored\n{procs.tails()}"
        )
        first.kill()
        gate.touch()
        second = procs.worker(FLOWS, backend_url, lease=1, name="worker-2")
        finished = await client.wait_finished(run.id, timeout=60)
        logged = await client.logs(run.id)

    assert finished.status is RunStatus.SUCCEEDED, procs.tails()
    assert finished.claims == 2
    one, two = first.pid, second.pid
    got = sorted((e.step or "", e.attempt or 0, e.text) for e in logged)
    assert got == sorted([
        ("", 1, "body begins"),
        ("", 1, "body ends"),
        ("a", 1, f"a ctx.log in {one}"),
        ("a", 1, f"a plain logging in {one}"),
        ("b", 1, f"b ctx.log in {one}"),
        ("b", 1, f"b plain logging in {one}"),
        ("c", 1, f"c ctx.log in {one}"),
        ("c", 1, f"c plain logging in {one}"),
        ("c", 2, f"c ctx.log in {two}"),
        ("c", 2, f"c plain logging in {two}"),
    ])  # fmt: skip
    assert [e.seq for e in logged] == sorted({e.seq for e in logged})
    assert logged[0].text == "body begins"
    assert logged[-1].text == "body ends"
