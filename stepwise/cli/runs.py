"""``stepwise runs …``: list, count, show, cancel, retry, fork, prune and signal runs. These
commands never create a database.

Wherever a command takes a RUN_ID, a unique prefix of it will do (``runs show 4b0e6a8e``):
``Client.resolve`` finds the run, or says which runs the prefix is ambiguous between.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from stepwise.backends.base import RunStatus
from stepwise.cli import console, options, runlogs, view
from stepwise.client.client import Client, Run
from stepwise.core import limits

MOMENT = options.Moment()


@click.group("runs")
def runs() -> None:
    """List, count, show, cancel, retry, fork, prune and signal runs."""


@runs.command("list")
@options.option("--workflow", default=None, help="only runs of this workflow")
@options.option(
    "--status", "statuses", type=click.Choice([s.value for s in RunStatus]), multiple=True,
    help="only runs in this status (repeatable)",
)  # fmt: skip
@options.option(
    "--since", type=MOMENT, default=None,
    help="only runs created at or after this: 2026-01-31T08:00 (local time), or 30m, 2h, 7d ago",
)  # fmt: skip
@options.option("--until", type=MOMENT, default=None, help="only runs created before this")
@options.option(
    "--limit", type=options.Count(limits.MAX_LIST_LIMIT), default=50,
    help="at most this many (a page)",
)  # fmt: skip
@options.option(
    "--parent", "parent", default=None,
    help="only the child runs this run (or a unique prefix of its id) started",
)  # fmt: skip
@options.option("--cursor", default=None, help="the page after the one that printed this cursor")
@options.option("--all", "every", is_flag=True, help="every page, not only the first")
@options.option("--json", "as_json", is_flag=True, help="print a JSON list instead of a table")
@options.database
def list_(
    workflow: str | None,
    statuses: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    limit: int,
    parent: str | None,
    cursor: str | None,
    every: bool,
    as_json: bool,
    database_url: str,
    schema: str,
) -> int:
    """List runs, newest first, a page at a time: a page that has a next one says so on
    stderr, with the --cursor that lists it (--all lists every page)."""

    async def work() -> int:
        async with Client.connect(database_url, schema=schema, create=False) as client:
            parent_id = None if parent is None else await client.resolve(parent)
            found: list[Run] = []
            after = cursor
            while True:
                page = await client.list(
                    workflow=workflow,
                    status=[RunStatus(s) for s in statuses],
                    limit=limit,
                    since=since,
                    until=until,
                    cursor=after,
                    parent_id=parent_id,
                )
                found += page
                after = page.next_cursor
                if after is None or not every:
                    break
        if after is not None:
            print(f"more runs: stepwise runs list --cursor {after}", file=sys.stderr)
        if as_json:
            console.print_json([view.listed(run) for run in found])
            return 0
        if not found:
            print("no runs found", file=sys.stderr)  # stdout stays empty for scripts
            return 0
        now = datetime.now(UTC)
        rows = [("ID", "WORKFLOW", "STATUS", "CREATED", "DURATION")]
        rows += [
            (
                run.id,
                run.workflow + (f" (version {run.version})" if run.version else ""),
                _status(run, now),
                view.stamp(run.created_at),
                view.duration(view.seconds_between(run.started_at, run.finished_at)),
            )
            for run in found
        ]
        print("\n".join(view.columns(rows)))
        return 0

    return console.execute(work())


def _status(run: Run, now: datetime) -> str:
    """The status column: the attempt after a retry, and when a delayed run starts."""
    shown = run.status.value + (f" ({run.attempt})" if run.attempt > 1 else "")
    if run.status is RunStatus.PENDING and run.available_at > now:
        shown += f", starts {view.stamp(run.available_at)}"
    return shown


@runs.command("count")
@options.option("--workflow", default=None, help="only runs of this workflow")
@options.option(
    "--status", "statuses", type=click.Choice([s.value for s in RunStatus]), multiple=True,
    help="only runs in this status (repeatable)",
)  # fmt: skip
@options.option("--since", type=MOMENT, default=None, help="only runs created at or after this")
@options.option("--until", type=MOMENT, default=None, help="only runs created before this")
@options.database
def count(
    workflow: str | None,
    statuses: tuple[str, ...],
    since: datetime | None,
    until: datetime | None,
    database_url: str,
    schema: str,
) -> int:
    """Print how many runs there are (of a workflow, in some statuses, created in a window)."""

    async def work() -> int:
        async with Client.connect(database_url, schema=schema, create=False) as client:
            found = await client.count(
                workflow=workflow,
                status=[RunStatus(s) for s in statuses],
                since=since,
                until=until,
            )
        print(found)
        return 0

    return console.execute(work())


@runs.command("show")
@click.argument("run_id")
@options.option("--json", "as_json", is_flag=True, help="print the full document as JSON")
@options.database
def show(run_id: str, as_json: bool, database_url: str, schema: str) -> int:
    """Show RUN_ID (or a unique prefix): every step with its status, attempts, duration and
    output, every error with its traceback, when a sleeping step wakes, the signals sent to
    the run and the child runs it started."""

    async def work() -> int:
        async with Client.connect(database_url, schema=schema, create=False) as client:
            run = await client.get(await client.resolve(run_id))
            shown = view.Shown(
                run=run,
                steps=await client.steps(run.id),
                attempts=await client.attempts(run.id),
                waiting=await client.waiting_reason(run),
                logs=await runlogs.tail(client, run.id),
                signals=await client.signals(run.id),
                children=await _children(client, run.id),
            )
        if as_json:
            console.print_json(view.document(shown))
        else:
            print(view.render(shown, datetime.now(UTC)))
        return 0

    return console.execute(work())


async def _children(client: Client, run_id: str) -> list[Run]:
    """Every child run ``run_id`` started, in start order (``list`` pages newest first)."""
    found: list[Run] = []
    cursor = None
    while True:
        page = await client.list(parent_id=run_id, limit=limits.MAX_LIST_LIMIT, cursor=cursor)
        found += page
        cursor = page.next_cursor
        if cursor is None:
            return found[::-1]


@runs.command("logs")
@click.argument("run_id")
@options.option(
    "-f", "--follow", is_flag=True, help="print new lines as they come, until the run ends"
)
@options.option("--json", "as_json", is_flag=True, help="one JSON object per line")
@options.database
def logs(run_id: str, follow: bool, as_json: bool, database_url: str, schema: str) -> int:
    """Print the log lines of RUN_ID (or a unique prefix), oldest first: what its workflow
    logged through ctx.log, and plain logging inside its steps."""

    async def work() -> int:
        async with Client.connect(database_url, schema=schema, create=False) as client:
            found = await client.resolve(run_id)
            await runlogs.show(client, found, follow=follow, as_json=as_json)
        return 0

    return console.execute(work())


@runs.command("cancel")
@click.argument("run_id")
@options.database
def cancel(run_id: str, database_url: str, schema: str) -> int:
    """Cancel RUN_ID (or a unique prefix): a run in flight stops at its next step."""

    async def work() -> int:
        async with Client.connect(database_url, schema=schema, create=False) as client:
            run = await client.cancel(await client.resolve(run_id))
        print(f"run {run.id} {run.status.value}")
        return 0

    return console.execute(work())


@runs.command("retry")
@click.argument("run_id")
@options.database
def retry(run_id: str, database_url: str, schema: str) -> int:
    """Start failed or canceled RUN_ID (or a unique prefix) again where it stopped: completed
    steps keep their results, the others run again."""

    async def work() -> int:
        async with Client.connect(database_url, schema=schema, create=False) as client:
            run = await client.retry(await client.resolve(run_id))
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
            source = await client.resolve(run_id)
            run = await client.fork(source, from_step=from_step)
        print(f"run {run.id} {run.status.value} (forked from {source} at {from_step!r})")
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


@runs.command("signal")
@click.argument("run_id")
@click.argument("name")
@options.option("--data", type=options.JSON, default=None, help="the payload, as JSON")
@options.option(
    "--idempotency-key", type=options.KEY, default=None,
    help="send at most once per key: a repeated key sends nothing",
)  # fmt: skip
@options.database
def signal(
    run_id: str,
    name: str,
    data: object,
    idempotency_key: str | None,
    database_url: str,
    schema: str,
) -> int:
    """Send signal NAME to RUN_ID (or a unique prefix): the workflow's
    ctx.step.wait_for_signal(NAME) receives --data. A signal sent before the workflow waits is
    kept until it does."""

    async def work() -> int:
        async with Client.connect(database_url, schema=schema, create=False) as client:
            target = await client.resolve(run_id)
            sent = await client.signal(target, name, data, idempotency_key=idempotency_key)
        print(f"signal {sent.name!r} #{sent.seq} sent to run {sent.run_id}")
        return 0

    return console.execute(work())
