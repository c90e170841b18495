"""``stepwise run`` (a workflow, here, to its end) and ``stepwise start`` (a run, for workers)."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from stepwise.cli import console, follow, options, telemetry, view
from stepwise.client.client import SLOT_WAIT, Client, Run
from stepwise.core import limits
from stepwise.core.definitions import checked_name
from stepwise.core.registry import default_registry
from stepwise.errors import InvalidArgument, WaitTimeout
from stepwise.loader import load_app


def _aware_time(text: str) -> datetime:
    """An ISO 8601 time; one that names no zone is local time, as everywhere in the CLI."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        problem = f"{text!r} is not an ISO 8601 time (2026-01-31T08:00, 2026-01-31T08:00Z)"
        raise InvalidArgument("", problem) from None
    return moment if moment.tzinfo is not None else moment.astimezone()


WORKFLOW = options.Checked("workflow", checked_name)
START_AT = options.Checked("time", _aware_time)
VERSION_HELP = "run this version of the workflow (default: the newest a live worker serves)"


@click.command("run")
@click.argument("file")
@click.argument("workflow")
@options.option("--input", "input_", type=options.JSON, default=None, help="input as JSON")
@options.option(
    "--concurrency", type=options.Count(limits.MAX_CONCURRENCY), default=10,
    help="steps of the run executed at once",
)  # fmt: skip
@options.max_payload_bytes
@options.database
def run(
    file: str,
    workflow: str,
    input_: Any,
    concurrency: int,
    max_payload_bytes: int,
    database_url: str,
    schema: str,
) -> int:
    """Run WORKFLOW from FILE (a Python file or module) in this process, showing each step,
    and print its result."""
    from stepwise.worker.inline import run_to_completion

    async def work() -> int:
        load_app(file)
        definition = default_registry.get(workflow)
        async with Client.connect(
            database_url,
            schema=schema,
            registry=default_registry,
            max_payload_bytes=max_payload_bytes,
        ) as client:
            started = await client.start(definition, input_)
            where = client.backend.display_url
            print(f"run {started.id} of {definition.name} on {where}", file=sys.stderr)
            announced = follow.Progress(steps=False)  # sleeps and retries; steps print below
            following = asyncio.create_task(follow.follow(client, started.id, announced, None))
            try:
                finished = await run_to_completion(
                    client,
                    default_registry,
                    started.id,
                    listener=console.StepPrinter(started.id),
                    concurrency=concurrency,
                )
            finally:
                following.cancel()
                await asyncio.gather(following, return_exceptions=True)
            announced.update(finished, await client.steps(started.id))
        return console.report(finished)

    return console.execute(telemetry.serving("stepwise-run", work(), inherit=True))


@click.command("start")
@click.argument("workflow", type=WORKFLOW)
@options.option("--input", "input_", type=options.JSON, default=None, help="input as JSON")
@options.option(
    "--idempotency-key", type=options.KEY, default=None,
    help="a second start with this key returns the first run",
)  # fmt: skip
@options.option("--deadline", type=options.SECONDS, default=None, help="seconds from now")
@options.option(
    "--delay", type=options.Duration(), default=None,
    help="start the run this long from now (10m, 1h30m, or seconds)",
)  # fmt: skip
@options.option(
    "--at", "start_at", type=START_AT, default=None,
    help="start the run at this ISO 8601 time (local time unless it names its zone)",
)  # fmt: skip
@options.option("--workflow-version", "version", type=options.KEY, default=None, help=VERSION_HELP)
@options.option("--wait", is_flag=True, help="show the run's progress, then print its result")
@options.option("--timeout", type=options.SECONDS_OR_ZERO, default=None, help="seconds to wait")
@options.max_payload_bytes
@options.database
def start(
    workflow: str,
    input_: Any,
    idempotency_key: str | None,
    deadline: float | None,
    delay: float | None,
    start_at: datetime | None,
    version: str | None,
    wait: bool,
    timeout: float | None,
    max_payload_bytes: int,
    database_url: str,
    schema: str,
) -> int:
    """Start a run of WORKFLOW (a worker executes it) and print its id; with --delay or --at,
    the run waits, pending, until then."""

    async def work() -> int:
        async with Client.connect(
            database_url, schema=schema, max_payload_bytes=max_payload_bytes
        ) as client:
            started = await client.start(
                workflow,
                input_,
                idempotency_key=idempotency_key,
                deadline=timedelta(seconds=deadline) if deadline else None,
                delay=delay,
                start_at=start_at,
                version=version,
            )
            print(started.id)
            reason = await client.waiting_reason(started)
            for note in _notes(started, reason, datetime.now(UTC)):
                print(f"note: {note}", file=sys.stderr)
            if not wait:
                return 0
            try:
                progress = follow.Progress(steps=True)
                finished = await follow.follow(client, started.id, progress, timeout)
            except WaitTimeout as exc:
                print(str(exc), file=sys.stderr)
                return 1
            return console.report(finished)

    return console.execute(telemetry.serving("stepwise-start", work(), inherit=True))


def _notes(run: Run, reason: str | None, now: datetime) -> list[str]:
    """Why a run just started will not run at once, worded for what it waits for: its start
    time, a worker that serves it, or a slot of its concurrency group. A delayed run's slot
    is not mentioned: the group's runs now say nothing about the group's runs then."""
    slot = reason is not None and reason.startswith(SLOT_WAIT)
    if run.available_at > now:
        notes = [f"the run starts at {view.when(run.available_at, now)}"]
        if reason is not None and not slot:
            notes.append(f"{reason} now; if none does by then, the run waits until one starts")
        return notes
    if reason is None:
        return []
    return [f"{reason}; the run waits until {'one of them ends' if slot else 'one starts'}"]
