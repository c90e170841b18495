"""The ``stepwise`` group: its global options, its commands, and ``main``, which turns every
usage error into one line that names the option and the value, with exit code 2."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from stepwise import __version__
from stepwise.cli import dashboard, operator, options, run, runs, schedules, worker


def _print_version(ctx: click.Context, _: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"stepwise {__version__}")
        ctx.exit()


@click.group(
    "stepwise",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
    help="Show the version and exit.",
)  # fmt: skip
@options.root_options
def stepwise() -> None:
    """Durable workflows for Python.

    Every option shows its default and, where it has one, its STEPWISE_* variable.

    \b
    Shell completion (zsh_source, fish_source for those shells):
      eval "$(_STEPWISE_COMPLETE=bash_source stepwise)"
    """


for command in (
    run.run, worker.worker, run.start, runs.runs, schedules.schedules, operator.operator,
    operator.crds, dashboard.dashboard,
):  # fmt: skip
    stepwise.add_command(command)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``stepwise`` command: its exit code."""
    try:
        code = stepwise.main(
            args=list(argv) if argv is not None else None,
            prog_name="stepwise",
            standalone_mode=False,
        )
    except click.exceptions.NoArgsIsHelpError as exc:
        print(exc.format_message(), file=sys.stderr)
        return 2
    except click.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "stepwise"
        print(f"{where}: error: {exc.format_message()} (see '{where} --help')", file=sys.stderr)
        return 2
    except click.ClickException as exc:
        print(f"stepwise: error: {exc.format_message()}", file=sys.stderr)
        return exc.exit_code
    except click.Abort:
        return 130
    return code if isinstance(code, int) else 0
