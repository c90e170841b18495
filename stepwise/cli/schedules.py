"""``stepwise schedules …``: add, list, pause, resume and delete schedules (see
``docs/schedules.md``). Only ``add`` creates a database; workers fire the ticks."""

from __future__ import annotations

import click

from stepwise.cli import console, options, view
from stepwise.client.client import Client
from stepwise.client.schedules import Schedule
from stepwise.core import cron
from stepwise.core.definitions import checked_name

WORKFLOW = options.Checked("workflow", checked_name)
CRON = options.Checked("cron", cron.parse)


@click.group("schedules")
def schedules() -> None:
    """Add, list, pause, resume, delete schedules."""


@schedules.command("add")
@click.argument("name")
@click.argument("cron_expression", metavar="CRON")
@click.argument("workflow", type=WORKFLOW)
@options.option("--input", "input_", type=options.JSON, default=None, help="input as JSON")
@options.option("--timezone", default="UTC", help="the IANA time zone CRON is read in")
@options.option(
    "--starting-deadline", type=options.SECONDS, default=cron.DEFAULT_STARTING_DEADLINE,
    help="seconds a missed tick may still fire late; older ones are skipped",
)  # fmt: skip
@options.database
def add(
    name: str,
    cron_expression: str,
    workflow: str,
    input_: object,
    timezone: str,
    starting_deadline: float,
    database_url: str,
    schema: str,
) -> int:
    """Start a run of WORKFLOW at every tick of CRON (5 fields, or 6 with seconds first), or
    update schedule NAME in place (it stays paused if it was)."""

    async def work() -> int:
        async with Client.connect(database_url, schema=schema) as client:
            added = await client.schedules.add(
                name,
                cron_expression,
                workflow,
                input_,
                timezone=timezone,
                starting_deadline=starting_deadline,
            )
        print(f"schedule {added.name}: next tick {view.stamp(added.next_fire_at)}")
        return 0

    return console.execute(work())


@schedules.command("list")
@options.option("--json", "as_json", is_flag=True, help="print a JSON list instead of a table")
@options.database
def list_(as_json: bool, database_url: str, schema: str) -> int:
    """List schedules by name."""

    async def work() -> int:
        async with Client.connect(database_url, schema=schema, create=False) as client:
            found = await client.schedules.list()
        if as_json:
            console.print_json([_listed(schedule) for schedule in found])
            return 0
        rows = [("NAME", "SCHEDULE", "TIMEZONE", "WORKFLOW", "PAUSED", "LAST", "NEXT")]
        rows += [
            (
                s.name,
                s.cron,
                s.timezone,
                s.workflow,
                "yes" if s.paused else "no",
                view.stamp(s.last_fired_at) if s.last_fired_at else "-",
                "-" if s.paused else view.stamp(s.next_fire_at),
            )
            for s in found
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        return 0

    return console.execute(work())


def _listed(schedule: Schedule) -> dict[str, object]:
    last = schedule.last_fired_at
    return {
        "name": schedule.name,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "workflow": schedule.workflow,
        "input": schedule.input,
        "paused": schedule.paused,
        "starting_deadline": schedule.starting_deadline,
        "last_fired_at": None if last is None else last.isoformat(),
        "next_fire_at": schedule.next_fire_at.isoformat(),
    }


def _changer(verb: str, doc: str) -> click.Command:
    @click.argument("name")
    @options.database
    def change(name: str, database_url: str, schema: str) -> int:
        async def work() -> int:
            async with Client.connect(database_url, schema=schema, create=False) as client:
                await getattr(client.schedules, verb)(name)
            print(f"schedule {name} {verb}d")
            return 0

        return console.execute(work())

    change.__doc__ = doc
    return schedules.command(verb)(change)


pause = _changer("pause", "Pause schedule NAME: no tick fires until it is resumed.")
resume = _changer("resume", "Resume schedule NAME from its first tick after now.")
delete = _changer("delete", "Delete schedule NAME; the runs it started stay.")
