"""``stepwise``: run a workflow on one machine, serve workers, start and inspect runs.

The only module that reads the environment (the ``STEPWISE_*`` variables, tabled in
docs/configuration.md). A variable is parsed only when a command that has its flag runs, with
the flag's own check, so a bad value breaks only the commands that use it and the error names
the variable. Every bad value ends in one line and exit code 2, before anything is stored.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from stepwise.backends import DEFAULT_URL, urls
from stepwise.backends.base import RunStatus
from stepwise.client.client import Client, Run
from stepwise.core import codec, divergence, limits
from stepwise.core.definitions import checked_name
from stepwise.core.events import ExecutionListener
from stepwise.core.registry import default_registry, load_app
from stepwise.errors import (
    ConfigurationError,
    InvalidArgument,
    InvalidInput,
    StepwiseError,
    WaitTimeout,
)
from stepwise.worker import recovery

if TYPE_CHECKING:
    from stepwise.worker import metrics

log = logging.getLogger("stepwise")
_N = TypeVar("_N")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors in one line (that names the culprit) instead of the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


@dataclass(frozen=True, slots=True)
class _FromEnv:
    """A flag's default: ``$variable`` (else ``fallback``), parsed by the flag's own check only
    once the command runs, so that a bad value is named and breaks only the commands using it."""

    variable: str
    fallback: str | None
    parse: Callable[[str], Any]

    def __str__(self) -> str:
        return f"${self.variable} or {self.fallback}"

    def value(self) -> Any:
        text = os.environ.get(self.variable, self.fallback)
        try:
            return None if text is None else self.parse(text)
        except argparse.ArgumentTypeError as exc:
            raise ConfigurationError(f"${self.variable}: {exc}") from None


def _env(name: str, fallback: str | None, parse: Callable[[str], Any] = str) -> _FromEnv:
    return _FromEnv(f"STEPWISE_{name}", fallback, parse)


def _resolve_env(args: argparse.Namespace) -> None:
    """Replace every default still waiting on the environment by its parsed value."""
    for field, value in vars(args).items():
        if isinstance(value, _FromEnv):
            setattr(args, field, value.value())


class _Append(argparse._AppendAction):
    """``append`` whose flags replace a default from the environment instead of extending it."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if isinstance(getattr(namespace, self.dest), _FromEnv):
            setattr(namespace, self.dest, None)
        super().__call__(parser, namespace, values, option_string)


def _number(text: str, kind: Callable[[str], _N]) -> _N:
    try:
        return kind(text)
    except ValueError:
        word = "whole number" if kind is int else "number"
        raise argparse.ArgumentTypeError(f"must be a {word}, got {text!r}") from None


def _checked(check: Callable[[], _N]) -> _N:
    """``check()``, whose ``InvalidArgument`` becomes argparse's error (which names the flag)."""
    try:
        return check()
    except InvalidArgument as exc:
        raise argparse.ArgumentTypeError(exc.problem) from None


def _count(high: int) -> Callable[[str], int]:
    return lambda text: _checked(lambda: limits.count(_number(text, int), "", high=high))


def _seconds(*, zero: bool = False) -> Callable[[str], float]:
    return lambda text: _checked(lambda: limits.seconds(_number(text, float), "", zero=zero))


def _choice(parse: Callable[[str], _N]) -> Callable[[str], _N]:
    return lambda text: _checked(lambda: parse(text))


def _port(text: str) -> int:
    value = _number(text, int)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port from 0 to 65535, got {value}")
    return value


def _log_level(text: str) -> str:
    if text.upper() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"must be one of {', '.join(LOG_LEVELS)}, got {text!r}")
    return text.upper()


def _database_url(text: str) -> str:
    try:
        urls.split(text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _workflow_name(text: str) -> str:
    return _checked(lambda: checked_name(text))


def _key(text: str) -> str:
    return _checked(lambda: limits.text(text, "", max_length=limits.MAX_KEY_LENGTH))


def _apps(text: str) -> list[str]:
    return [app for app in text.split(",") if app]


def _json_arg(text: str) -> Any:
    """``text`` decoded, and storable as a run's input (checked here, before any database is
    opened or created)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}: "
            f"{limits.shown(text)}"
        ) from None
    except RecursionError:
        raise argparse.ArgumentTypeError(str(limits.too_deep("the value"))) from None
    try:
        limits.check_json(value, "the value")
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="stepwise", description="Durable workflows for Python.")
    parser.add_argument(
        "--log-level",
        type=_log_level,
        default=_env("LOG_LEVEL", "WARNING", _log_level),
        help=f"{', '.join(LOG_LEVELS)} (default: %(default)s)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    concurrency = _count(limits.MAX_CONCURRENCY)
    max_payload = _count(codec.MAX_PAYLOAD_BYTES)
    on_divergence = _choice(divergence.parse)

    def database(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--database-url",
            type=_database_url,
            default=_env("DATABASE_URL", DEFAULT_URL, _database_url),
            help="postgresql://… or sqlite:///file.db (default: %(default)s)",
        )
        p.add_argument(
            "--schema",
            default=_env("SCHEMA", "stepwise"),
            help="Postgres schema (default: %(default)s)",
        )

    def payload(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--max-payload-bytes",
            type=max_payload,
            default=_env("MAX_PAYLOAD_BYTES", str(codec.DEFAULT_MAX_PAYLOAD_BYTES), max_payload),
            help="largest run input, step result or run output stored, in bytes of JSON "
            "(default: %(default)s)",
        )

    def waiting(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--wait-for-database",
            type=_seconds(zero=True),
            default=_env("WAIT_FOR_DATABASE", "60", _seconds(zero=True)),
            help="seconds to keep trying, at start, a database that cannot be reached yet "
            "(default: %(default)s)",
        )

    def health(p: argparse.ArgumentParser, port: str, what: str) -> None:
        p.add_argument(
            "--health-port",
            type=_port,
            default=_env("HEALTH_PORT", port, _port),
            help=f"port of {what} (0: none; default: %(default)s)",
        )
        p.add_argument(
            "--health-host", default=_env("HEALTH_HOST", "0.0.0.0"), help="(default: %(default)s)"
        )

    run = sub.add_parser("run", help="run a workflow in this process and print its result")
    run.add_argument("file", help="Python file (or module) that defines the workflow")
    run.add_argument("workflow", help="workflow name")
    run.add_argument("--input", type=_json_arg, default=None, help="input as JSON")
    run.add_argument("--concurrency", type=concurrency, default=10)
    payload(run)
    database(run)

    worker = sub.add_parser("worker", help="serve workflows: claim and execute runs")
    worker.add_argument(
        "--app",
        action=_Append,
        default=_env("APP", "", _apps),
        help="workflow file or module to load (repeatable; default: %(default)s, comma-separated)",
    )
    worker.add_argument(
        "--concurrency",
        type=concurrency,
        default=_env("CONCURRENCY", "10", concurrency),
        help="runs executed at once (default: %(default)s)",
    )
    worker.add_argument(
        "--lease",
        type=_seconds(),
        default=_env("LEASE_SECONDS", "30", _seconds()),
        help="seconds a run stays leased without a heartbeat (default: %(default)s)",
    )
    worker.add_argument("--shutdown-grace", type=_seconds(zero=True), default=25.0)
    worker.add_argument(
        "--max-recovery-attempts",
        type=_count(recovery.MAX_RECOVERY_ATTEMPTS),
        default=_env(
            "MAX_RECOVERY_ATTEMPTS",
            str(recovery.DEFAULT_MAX_RECOVERY_ATTEMPTS),
            _count(recovery.MAX_RECOVERY_ATTEMPTS),
        ),
        help="fail a run whose worker died this many times in a row without completing a step "
        "(default: %(default)s)",
    )
    worker.add_argument(
        "--on-divergence",
        type=on_divergence,
        default=_env("ON_DIVERGENCE", divergence.OnDivergence.WARN.value, on_divergence),
        help="a run whose replay diverged from its stored history gets a warning (warn), or "
        "is also failed (fail) (default: %(default)s)",
    )
    worker.add_argument("--poll-interval", type=_seconds(), default=1.0)
    payload(worker)
    health(worker, "0", "the health and metrics endpoint")
    database(worker)
    waiting(worker)

    start = sub.add_parser("start", help="start a run (a worker executes it); prints its id")
    start.add_argument("workflow", type=_workflow_name)
    start.add_argument("--input", type=_json_arg, default=None)
    start.add_argument("--idempotency-key", type=_key)
    start.add_argument("--deadline", type=_seconds(), help="seconds from now")
    start.add_argument("--wait", action="store_true", help="wait for the result and print it")
    start.add_argument("--timeout", type=_seconds(zero=True), help="seconds to wait at most")
    payload(start)
    database(start)

    runs = sub.add_parser("runs", help="list, show or cancel runs")
    runs_sub = runs.add_subparsers(dest="runs_command", required=True, metavar="ACTION")
    ls = runs_sub.add_parser("list")
    ls.add_argument("--workflow")
    ls.add_argument("--status", choices=[s.value for s in RunStatus], action="append")
    ls.add_argument("--limit", type=_count(limits.MAX_LIST_LIMIT), default=50)
    database(ls)
    show = runs_sub.add_parser("show")
    show.add_argument("run_id")
    database(show)
    cancel = runs_sub.add_parser("cancel")
    cancel.add_argument("run_id")
    database(cancel)

    operator = sub.add_parser("operator", help="run the Kubernetes operator")
    operator.add_argument(
        "--namespace", action="append", default=[], help="serve this namespace (repeatable)"
    )
    operator.add_argument(
        "--all-namespaces", action="store_true", help="serve every namespace (the default)"
    )
    health(operator, "8080", "the liveness endpoint /healthz")
    database(operator)
    waiting(operator)

    crds = sub.add_parser("crds", help="write the CRD YAML to crds/ and the chart")
    crds.add_argument("--output", default=None, help="write one file here instead")
    crds.add_argument("--check", action="store_true", help="fail if committed copies drift")
    return parser


class StepPrinter(ExecutionListener):
    """Shows each step of one run as it starts and ends, on stderr."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def _say(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def step_started(self, run_id: str, key: str, attempt: int) -> None:
        if run_id == self.run_id:
            again = f" (attempt {attempt})" if attempt > 1 else ""
            self._say(f"  ▶ {key}{again}")

    def step_replayed(self, run_id: str, key: str) -> None:
        if run_id == self.run_id:
            self._say(f"  ↺ {key} (stored result)")

    def step_finished(
        self, run_id: str, key: str, *, ok: bool, seconds: float, error: str | None, retrying: bool
    ) -> None:
        if run_id != self.run_id:
            return
        if ok:
            self._say(f"  ✓ {key} ({seconds * 1000:.0f} ms)")
        else:
            self._say(f"  ✗ {key}: {error}{' — retrying' if retrying else ''}")


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def _run_summary(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "workflow": run.workflow,
        "status": run.status.value,
        "created_at": run.created_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


async def _cmd_run(args: argparse.Namespace) -> int:
    from stepwise.worker.inline import run_to_completion

    load_app(args.file)
    definition = default_registry.get(args.workflow)
    async with Client.connect(
        args.database_url,
        schema=args.schema,
        registry=default_registry,
        max_payload_bytes=args.max_payload_bytes,
    ) as client:
        run = await client.start(definition, args.input)
        print(f"run {run.id} of {definition.name} on {client.backend.display_url}", file=sys.stderr)
        finished = await run_to_completion(
            client,
            default_registry,
            run.id,
            listener=StepPrinter(run.id),
            concurrency=args.concurrency,
        )
    return _report(finished)


def _report(run: Run) -> int:
    if run.status is RunStatus.SUCCEEDED:
        _print_json(run.output)
        return 0
    print(f"run {run.id} {run.status.value}", file=sys.stderr)
    if run.error:
        print(f"{run.error.get('type')}: {run.error.get('message')}", file=sys.stderr)
    return 1


async def _cmd_worker(args: argparse.Namespace) -> int:
    from stepwise.worker.worker import Worker

    if not args.app:
        raise StepwiseError("no workflows to serve: pass --app FILE_OR_MODULE (or $STEPWISE_APP)")
    for app in args.app:
        load_app(app)
    metrics = _worker_metrics() if args.health_port else None
    async with Client.connect(
        args.database_url,
        schema=args.schema,
        max_payload_bytes=args.max_payload_bytes,
        wait_for_database=args.wait_for_database,
    ) as client:
        worker = Worker(
            client,
            default_registry,
            concurrency=args.concurrency,
            lease_seconds=args.lease,
            poll_interval=args.poll_interval,
            shutdown_grace=args.shutdown_grace,
            listener=metrics,
            max_recovery_attempts=args.max_recovery_attempts,
            on_divergence=args.on_divergence,
        )
        stop = _stop_on_signals()
        server = None
        if metrics is not None:
            try:
                server = await metrics.serve(worker, args.health_host, args.health_port)
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot serve health checks on {args.health_host}:{args.health_port}: "
                    f"{exc.strerror or exc}"
                ) from None
        try:
            await worker.run(stop)
        finally:
            if server is not None:
                await server.cleanup()
    return 0


def _worker_metrics() -> metrics.Metrics:
    """The worker's metrics; their libraries come with the ``worker`` extra, which a plain
    install lacks: that is one line naming the extra, not a traceback."""
    try:
        from stepwise.worker import metrics
    except ModuleNotFoundError as exc:
        raise ConfigurationError(
            f"--health-port needs {exc.name}: pip install 'stepwise[worker]', or --health-port 0"
        ) from None
    return metrics.Metrics()


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _cmd_start(args: argparse.Namespace) -> int:
    from datetime import timedelta

    deadline = timedelta(seconds=args.deadline) if args.deadline else None
    async with Client.connect(
        args.database_url, schema=args.schema, max_payload_bytes=args.max_payload_bytes
    ) as client:
        run = await client.start(
            args.workflow, args.input, idempotency_key=args.idempotency_key, deadline=deadline
        )
        print(run.id)
        reason = await client.waiting_reason(run)
        if reason:
            print(f"note: {reason}; the run waits until one starts", file=sys.stderr)
        if not args.wait:
            return 0
        try:
            finished = await client.wait_finished(run.id, timeout=args.timeout)
        except WaitTimeout as exc:
            print(str(exc), file=sys.stderr)
            return 1
        return _report(finished)


async def _cmd_runs(args: argparse.Namespace) -> int:
    async with Client.connect(args.database_url, schema=args.schema, create=False) as client:
        if args.runs_command == "list":
            statuses = [RunStatus(s) for s in args.status or []]
            runs = await client.list(workflow=args.workflow, status=statuses, limit=args.limit)
            for run in runs:
                print(
                    f"{run.id}  {run.workflow:<24} {run.status.value:<10} "
                    f"{run.created_at:%Y-%m-%d %H:%M:%S}"
                )
            return 0
        if args.runs_command == "show":
            run = await client.get(args.run_id)
            steps = await client.steps(run.id)
            doc = _run_summary(run) | {
                "input": run.input,
                "output": run.output,
                "error": run.error,
                "warning": run.warning,
                "attempt": run.attempt,
                "claims": run.claims,
                "recoveries": run.recoveries,
                "waiting": await client.waiting_reason(run),
                "steps": [
                    {"name": s.key, "status": s.status.value, "attempts": s.attempts}
                    | ({"error": s.error} if s.error else {})
                    for s in steps
                ],
            }
            _print_json(doc)
            return 0
        run = await client.cancel(args.run_id)
        print(f"run {run.id} {run.status.value}")
        return 0


async def _cmd_operator(args: argparse.Namespace) -> int:
    from stepwise.operator import main as operator_main

    return await operator_main.run(
        database_url=args.database_url,
        schema=args.schema,
        namespaces=args.namespace,
        all_namespaces=args.all_namespaces or not args.namespace,
        health_port=args.health_port,
        health_host=args.health_host,
        wait_for_database=args.wait_for_database,
    )


async def _cmd_crds(args: argparse.Namespace) -> int:
    from stepwise.operator import crd

    return crd.write_all(output=args.output, check=args.check)


COMMANDS: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "run": _cmd_run,
    "worker": _cmd_worker,
    "start": _cmd_start,
    "runs": _cmd_runs,
    "operator": _cmd_operator,
    "crds": _cmd_crds,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        _resolve_env(args)
        logging.basicConfig(
            level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        code = asyncio.run(COMMANDS[args.command](args))
        sys.stdout.flush()
    except StepwiseError as exc:
        print(f"stepwise: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _closed_pipe()
    log.debug("%s took %.3fs", args.command, time.monotonic() - started)
    return code


def _closed_pipe() -> int:
    """The reader of our output went away (``stepwise runs list | head``): end quietly, with
    the status of a process killed by SIGPIPE, as ``cat`` would."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # the interpreter's last flush must not fail again
    return 128 + signal.SIGPIPE
