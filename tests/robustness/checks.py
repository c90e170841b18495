"""The durability invariant, checked from outside: a completed step never runs again.

What the tests can see: the ledger (every execution's ``start`` and ``done``, with wall-clock
times, written by the step function itself) and the stored steps (one row per memo key, whose
output names the execution that produced it, and whose ``finished_at`` is taken right after
that execution's function returned — before the completion is committed).

The invariant, stated so it can be checked: for every (run, key), no execution other than the
stored one *started* after the stored one finished. A step may legitimately run more than once
(at-least-once: an execution whose result was never stored — its worker died, or lost its
lease — is retried), but never again once a result was stored. In particular, when the first
execution's result is the one stored, the step ran exactly once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.workers import Procs
from stepwise import Client, Run, RunStatus, StepStatus
from tests.robustness.flows import Entry, read_ledger


@dataclass(frozen=True, slots=True)
class Replays:
    """What a chaos run did, for the report: executions started and how many were repeats."""

    steps: int
    executions: int

    @property
    def reruns(self) -> int:
        return self.executions - self.steps


async def assert_completed_steps_never_rerun(
    client: Client,
    run_ids: Sequence[str],
    ledger: Path,
    keys: Sequence[str],
    untracked: Sequence[str] = (),
) -> Replays:
    """Every run has exactly ``keys`` and ``untracked`` stored as completed, and the ledger
    shows no completed step of ``keys`` run again; returns the counts. ``untracked``: steps
    no step function records (signal waits, child steps), checked as completed only."""
    by_step: dict[tuple[str, str], list[Entry]] = defaultdict(list)
    for entry in read_ledger(ledger):
        by_step[entry.run_id, entry.key].append(entry)
    problems: list[str] = []
    for run_id in run_ids:
        steps = await client.steps(run_id)
        stored_keys = [s.key for s in steps]
        expected = [*keys, *untracked]
        if sorted(stored_keys) != sorted(expected):
            problems.append(f"run {run_id}: stored steps {stored_keys}, expected {expected}")
            continue
        for step in steps:
            if step.key in untracked:
                if step.status is not StepStatus.COMPLETED:
                    problems.append(f"run {run_id} step {step.key}: {step.status.value}")
                continue
            entries = by_step[run_id, step.key]
            starts = [e for e in entries if e.event == "start"]
            dones = {e.execution for e in entries if e.event == "done"}
            where = f"run {run_id} step {step.key}"
            if (
                step.status is not StepStatus.COMPLETED
                or step.finished_at is None
                or step.output is None
            ):
                problems.append(f"{where}: stored as {step.status.value}, not completed")
                continue
            kept = step.output["execution"]
            if kept not in dones:
                problems.append(f"{where}: stored result of {kept}, which never returned")
            finished = step.finished_at.timestamp()
            late = [e for e in starts if e.execution != kept and e.at > finished]
            if late:
                problems.append(
                    f"{where}: completed by {kept} at {finished:.6f}, ran again: "
                    + ", ".join(f"{e.execution} at {e.at:.6f}" for e in late)
                )
            if starts and min(starts, key=lambda e: e.at).execution == kept and len(starts) != 1:
                problems.append(
                    f"{where}: its first execution was stored, yet it ran {len(starts)} times"
                )
    assert not problems, f"{len(problems)} violation(s):\n" + "\n".join(problems[:30])
    ids = set(run_ids)
    return Replays(
        steps=len(run_ids) * len(keys),
        executions=sum(1 for e in read_ledger(ledger) if e.event == "start" and e.run_id in ids),
    )


async def assert_outputs_are_what_was_stored(client: Client, runs: Sequence[Run]) -> None:
    """Each run returned the executions its stored steps name, in step order: every replay saw
    the results stored before it (a result accepted but unseen would have been run again)."""
    unseen = []
    for run in runs:
        stored = {
            s.key: s.output["execution"] for s in await client.steps(run.id) if s.output is not None
        }
        if run.output != [stored.get(f"step-{i}") for i in range(len(stored))]:
            unseen.append(run.id)
    assert not unseen, f"runs whose stored steps their last owner did not see: {unseen[:10]}"


def assert_all_succeeded(runs: Sequence[Run], procs: Procs) -> None:
    """Every run succeeded; otherwise say which did not, why, and what the workers logged."""
    bad = [run for run in runs if run.status is not RunStatus.SUCCEEDED]
    assert not bad, (
        f"{len(bad)} of {len(runs)} runs did not succeed:\n"
        + "\n".join(f"{run.id} {run.status.value}: {run.error}" for run in bad[:10])
        + f"\n{procs.tails()}"
    )


def assert_no_errors_logged(procs: Procs) -> None:
    """No process logged an ERROR: crashes, restarts and lost leases are expected events that
    warrant warnings at most; an ERROR means something unforeseen happened (and was survived)."""
    errors = [
        f"{proc.name}: {line}"
        for proc in procs.procs
        for line in proc.log().splitlines()
        if " ERROR " in line
    ]
    assert not errors, "errors logged:\n" + "\n".join(errors[:20])
