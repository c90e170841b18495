"""The parameter types and the options several commands share.

Every check is the library's own (``stepwise.core.limits``, the URL parser, the workflow name
rule), so the CLI refuses what the client refuses, in the same words, before anything is
stored. A ``STEPWISE_*`` variable is an option's ``envvar``: it is read only by the commands
that have the option, and checked by the option's type, so a bad value breaks only those
commands and Click's error names the option and the variable.

Global options (``--log-level``, ``--database-url``, ``--schema``) are accepted before the
command (``stepwise --log-level DEBUG worker``) and after it: the root group keeps their text
as given, and the command that uses one checks it (a command's own flag wins).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from stepwise.backends import DEFAULT_URL, urls
from stepwise.cli import logconfig
from stepwise.core import codec, limits
from stepwise.errors import ConfigurationError, InvalidArgument, InvalidInput

F = TypeVar("F", bound=Callable[..., Any])
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class Checked(click.ParamType[Any]):
    """Text turned into a value by ``parse``, whose ``InvalidArgument``, ``InvalidInput`` or
    ``ConfigurationError`` becomes Click's error naming the parameter."""

    def __init__(self, name: str, parse: Callable[[str], Any]) -> None:
        self.name = name
        self.parse = parse

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value  # a default already parsed
        try:
            return self.parse(value)
        except InvalidArgument as exc:
            self.fail(exc.problem, param, ctx)
        except (InvalidInput, ConfigurationError) as exc:
            self.fail(str(exc), param, ctx)


class Count(click.ParamType[int]):
    """A whole number from 1 to ``high``."""

    name = "integer"

    def __init__(self, high: int) -> None:
        self.high = high

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        number = click.INT.convert(value, param, ctx)
        try:
            return limits.count(number, "", high=self.high)
        except InvalidArgument as exc:
            self.fail(exc.problem, param, ctx)


class Seconds(click.ParamType[float]):
    """A finite number of seconds, above zero (at least zero with ``zero``), up to 100 years."""

    name = "seconds"

    def __init__(self, *, zero: bool = False) -> None:
        self.zero = zero

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        number = click.FLOAT.convert(value, param, ctx)
        try:
            return limits.seconds(number, "", zero=self.zero)
        except InvalidArgument as exc:
            self.fail(exc.problem, param, ctx)


class Duration(click.ParamType[float]):
    """A duration as seconds: ``30d``, ``12h``, ``1h30m``, ``90s``, or a plain number of
    seconds; above zero and up to 100 years."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            number = float(value)
        except ValueError:
            try:
                number = limits.parse_duration(str(value).strip()).total_seconds()
            except ValueError as exc:
                self.fail(str(exc), param, ctx)
        try:
            return limits.seconds(number, "")
        except InvalidArgument as exc:
            self.fail(exc.problem, param, ctx)


class Moment(click.ParamType[datetime]):
    """A moment: ISO 8601 (``2026-01-31``, ``2026-01-31T08:00``, local time unless it names
    its zone) or a duration ago (``90s``, ``30m``, ``2h``, ``7d``: ``limits.parse_duration``)."""

    name = "moment"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        try:
            ago = limits.parse_duration(text)
        except OverflowError:  # more days than a timedelta holds
            self.fail(f"must be at most {limits.MAX_SECONDS:.0f} seconds ago", param, ctx)
        except ValueError:
            pass
        else:
            try:
                return datetime.now(UTC) - timedelta(seconds=limits.seconds(ago, "", zero=True))
            except InvalidArgument as exc:
                self.fail(exc.problem, param, ctx)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.fail(
                f"{text!r} is neither a date and time (2026-01-31T08:00) nor a duration ago "
                "(30m, 2h, 7d)",
                param,
                ctx,
            )
        return moment if moment.tzinfo is not None else moment.astimezone()


class AppList(click.ParamType[str]):
    """A workflow file or module; ``$STEPWISE_APP`` lists several, comma-separated."""

    name = "file-or-module"
    envvar_list_splitter = ","

    def split_envvar_value(self, rv: str) -> Sequence[str]:
        return [app for app in rv.split(",") if app]


def _json_value(text: str) -> Any:
    """``text`` decoded, and storable as a run's input (checked before any database opens)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}: "
            f"{limits.shown(text)}"
        ) from None
    except RecursionError:
        raise limits.too_deep("the value") from None
    limits.check_json(value, "the value")
    return value


def _database_url(text: str) -> str:
    urls.split(text)
    return text


JSON = Checked("json", _json_value)
PORT = click.IntRange(0, 65535)
SECONDS = Seconds()
SECONDS_OR_ZERO = Seconds(zero=True)
KEY = Checked("text", lambda text: limits.text(text, "", max_length=limits.MAX_KEY_LENGTH))


def option(*flags: str, **kwargs: Any) -> Callable[[F], F]:
    """``click.option`` that shows its default and its variable in ``--help``."""
    return click.option(*flags, show_default=True, show_envvar=True, **kwargs)


class _AsGiven(click.ParamType[Any]):
    """The root group's copy of a global option: the text as given, checked by the command."""

    def __init__(self, checked: click.ParamType[Any]) -> None:
        self.checked = checked
        self.name = checked.name

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str | None:
        return self.checked.get_metavar(param, ctx)


@dataclass(frozen=True, slots=True)
class _Global:
    flag: str
    variable: str
    default: str
    type: click.ParamType[Any]
    help: str

    def on_command(self, effect: Callable[[Any], None] | None = None) -> Callable[[F], F]:
        """The option as a command takes it; with ``effect``, the value goes there instead of
        to the command."""

        def resolve(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
            """The command's own flag, else the flag given before the command, else the
            variable or the default."""
            assert param.name is not None
            own = ctx.get_parameter_source(param.name) is ParameterSource.COMMANDLINE
            before = ctx.find_root().get_parameter_source(param.name)
            if not own and before is ParameterSource.COMMANDLINE:
                value = param.type_cast_value(ctx, ctx.meta[f"stepwise.{param.name}"])
            if effect is not None:
                effect(value)
            return value

        return option(
            self.flag, envvar=self.variable, default=self.default, type=self.type,
            help=self.help, callback=resolve, expose_value=effect is None,
        )  # fmt: skip


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Keep a global option given before the command for the command to check."""
    ctx.meta[f"stepwise.{param.name}"] = value
    return value


def _configure_level(level: str) -> None:
    logconfig.configure(level=level)


def _configure_format(log_format: str) -> None:
    logconfig.configure(log_format=log_format)


GLOBALS = (
    _Global("--log-level", "STEPWISE_LOG_LEVEL", "WARNING",
            click.Choice(LOG_LEVELS, case_sensitive=False), "what the logs show"),
    _Global("--database-url", "STEPWISE_DATABASE_URL", DEFAULT_URL,
            Checked("url", _database_url), "postgresql://… or sqlite:///file.db"),
    _Global("--schema", "STEPWISE_SCHEMA", "stepwise", click.STRING, "the Postgres schema"),
    _Global("--log-format", "STEPWISE_LOG_FORMAT", "text", click.Choice(logconfig.FORMATS),
            "how the logs are written: text, or one JSON object per line"),
)  # fmt: skip
_LOG_LEVEL, _DATABASE_URL, _SCHEMA, _LOG_FORMAT = GLOBALS
_SERVING_LOG_LEVEL = dataclasses.replace(_LOG_LEVEL, default="INFO")
"""A worker's and the operator's: a line per run outcome, per handled resource, by default."""


def root_options(f: F) -> F:
    """The global options, as the root group takes them (before the command)."""
    for spec in reversed(GLOBALS):
        f = click.option(
            spec.flag, envvar=spec.variable, default=spec.default, type=_AsGiven(spec.type),
            help=f"{spec.help} (also accepted after the command)", show_default=True,
            show_envvar=True, expose_value=False, callback=_remember,
        )(f)  # fmt: skip
    return f


def log_level(f: F) -> F:
    """``--log-level`` and ``--log-format``: every command takes them, and configures logging
    with them (``logconfig``)."""
    return _LOG_LEVEL.on_command(_configure_level)(_LOG_FORMAT.on_command(_configure_format)(f))


def database(f: F) -> F:
    """``--database-url`` and ``--schema``, for the commands that use the database."""
    return _DATABASE_URL.on_command()(_SCHEMA.on_command()(log_level(f)))


def serving(f: F) -> F:
    """``database`` for the long-running commands (worker, operator), whose log level is INFO
    unless told otherwise."""
    level = _SERVING_LOG_LEVEL.on_command(_configure_level)
    logs = level(_LOG_FORMAT.on_command(_configure_format)(f))
    return _DATABASE_URL.on_command()(_SCHEMA.on_command()(logs))


def max_payload_bytes(f: F) -> F:
    return option(
        "--max-payload-bytes", envvar="STEPWISE_MAX_PAYLOAD_BYTES",
        default=codec.DEFAULT_MAX_PAYLOAD_BYTES, type=Count(codec.MAX_PAYLOAD_BYTES),
        help="largest run input, step result or run output stored, in bytes of JSON",
    )(f)  # fmt: skip


def wait_for_database(f: F) -> F:
    return option(
        "--wait-for-database", envvar="STEPWISE_WAIT_FOR_DATABASE", default=60.0,
        type=SECONDS_OR_ZERO,
        help="seconds to keep trying, at start, a database that cannot be reached yet",
    )(f)  # fmt: skip


def health(port: int, what: str) -> Callable[[F], F]:
    def decorate(f: F) -> F:
        f = option(
            "--health-port", envvar="STEPWISE_HEALTH_PORT", default=port, type=PORT,
            help=f"port of {what} (0: none)",
        )(f)  # fmt: skip
        return option(
            "--health-host",
            envvar="STEPWISE_HEALTH_HOST",
            default="0.0.0.0",
            help="address to bind",
        )(f)

    return decorate
