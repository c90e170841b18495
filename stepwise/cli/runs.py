"""``stepwise runs …``: list, show, cancel, retry, fork and prune runs. These commands never
create a database."""

from __future__ import annotations

from typing import Any

import click

from stepwise.backends.base import RunStatus
from stepwise.cli import console, options
from stepwise.client.client import Client, Run
from stepwise.core import limits


@click.group("runs")
def runs() -> None:
    """List, show, cancel, retry, fork and prune runs."""


@runs.command("list")
@options.option("--workflow", default=None, help="only runs of this workflow")
@options.option(
    "--status", "statuses", type=click.Choice([s.value for s in RunStatus]), multiple=True,
    help="only runs in this status (repeatable)",
)  # fmt: skip
@options.option(
    "--limit", type=options.Count(limits.MAX_LIST_LIMIT), default=50, help="at most this many"
)
@options.database
def list_(
    workflow: str | None, statuses: tuple[str, ...], limit: int, database_url: str, schema: str
) -> int:
    """List runs, newest first."""

    async def work() -> int:
        async with Client.connect(database_url, schema=schema, create=False) as client:
            found = await client.list(
                workflow=workflow, status=[RunStatus(s) for s in statuses], limit=limit
            )
        for run in found:
            print(
                f"{run.id}  {run.workflow:<24} {run.status.value:<10} "
                f"{run.created_at:%Y-%m-%d %H:%M:%S}"
            )
        return 0

    return console.execute(work())


@runs.command("show")
@click.argument("run_id")
@options.database
def show(run_id: str, database_url: str, schema: str) -> int:
    """Show RUN_ID: its input, output, error and every step."""

    async def work() -> int:
        async with Client.connect(database_url, schema=schema, create=False) as client:
            run = await client.get(run_id)
            steps = await client.steps(run.id)
            doc = _summary(run) | {
                "input": run.input,
                "output": run.output,
                "error": _without_traceback(run.error),
                "warning": run.warning,
                "attempt": run.attempt,
                "claims": run.claims,
                "recoveries": run.recoveries,
                "waiting": await client.waiting_reason(run),
                "steps": [
                    {"name": s.key, "status": s.status.value, "attempts": s.attempts}
                    | ({"error": _without_traceback(s.error)} if s.error else {})
                    for s in steps
                ],
            }
        console.print_json(doc)
        console.print_errors(run, steps)
        return 0

    return console.execute(work())


@runs.command("cancel")
@click.argument("run_id")
@options.database
def cancel(run_id: str, database_url: str, schema: str) -> int:
    """Cancel RUN_ID: a run in flight stops at its next step."""

    async def work() -> int:
        async with Client.connect(database_url, schema=schema, create=False) as client:
            run = await client.cancel(run_id)
        print(f"run {run.id} {run.status.value}")
        return 0

    return console.execute(work())


@runs.command("retry")
@click.argument("run_id")
@options.database
def retry(run_id: str, database_url: str, schema: str) -> int:
    """Start failed or canceled RUN_ID again where it stopped: completed steps keep their
    results, the others run again."""

    async def work() -> int:
        async with Client.connect(database_url, schema=schema, create=False) as client:
            run = await client.retry(run_id)
        print(f"run {run.id} {run.status.value} (attempt {run.attempt})")
        return 0

    return console.execute(work())


@runs.command("fork")
@click.argument("run_id")
@options.option("--from-step", required=True, help="run this step and those after it again")
@options.database
def fork(run_id: str, from_step: str, database_url: str, schema: str) -> int:
    """Start a new run of RUN_ID's workflow and input that reuses the results of the steps
    before --from-step."""

    async def work() -> int:
        async with Client.connect(database_url, schema=schema, create=False) as client:
            run = await client.fork(run_id, from_step=from_step)
        print(f"run {run.id} {run.status.value} (forked from {run_id} at {from_step!r})")
        return 0

    return console.execute(work())


@runs.command("prune")
@options.option(
    "--older-than", type=options.Duration(), required=True,
    help="delete runs that finished longer ago than this (30d, 12h, 90m)",
)  # fmt: skip
@options.database
def prune(older_than: float, database_url: str, schema: str) -> int:
    """Delete finished runs, with their steps, in small batches that never block workers."""

    async def work() -> int:
        async with Client.connect(database_url, schema=schema, create=False) as client:
            pruned = await client.prune(older_than=older_than)
        print(f"pruned {pruned} run(s)")
        return 0

    return console.execute(work())


def _without_traceback(error: dict[str, Any] | None) -> dict[str, Any] | None:
    """The error document for the JSON view: its traceback is printed as text instead."""
    return None if error is None else {k: v for k, v in error.items() if k != "traceback"}


def _summary(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "workflow": run.workflow,
        "status": run.status.value,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }
