"""``stepwise worker``: serve workflows, claiming and executing runs until SIGTERM."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from stepwise.cli import console, options, telemetry
from stepwise.client.client import Client
from stepwise.core import divergence, limits, runlog
from stepwise.core.registry import default_registry
from stepwise.errors import ConfigurationError, StepwiseError
from stepwise.loader import load_app
from stepwise.worker import recovery

if TYPE_CHECKING:
    from stepwise.worker import metrics


@click.command("worker")
@options.option(
    "--app", "apps", type=options.AppList(), multiple=True, envvar="STEPWISE_APP",
    help="workflow file or module to load (repeatable; the variable: comma-separated)",
)  # fmt: skip
@options.option(
    "--concurrency", type=options.Count(limits.MAX_CONCURRENCY), default=10,
    envvar="STEPWISE_CONCURRENCY", help="runs executed at once",
)  # fmt: skip
@options.option(
    "--lease", type=options.SECONDS, default=30.0, envvar="STEPWISE_LEASE_SECONDS",
    help="seconds a run stays leased without a heartbeat",
)  # fmt: skip
@options.option(
    "--shutdown-grace", type=options.SECONDS_OR_ZERO, default=25.0,
    help="seconds runs in flight get to finish after SIGTERM",
)  # fmt: skip
@options.option(
    "--max-recovery-attempts", type=options.Count(recovery.MAX_RECOVERY_ATTEMPTS),
    default=recovery.DEFAULT_MAX_RECOVERY_ATTEMPTS, envvar="STEPWISE_MAX_RECOVERY_ATTEMPTS",
    help="fail a run whose worker died this many times in a row without completing a step",
)  # fmt: skip
@options.option(
    "--on-divergence", type=options.Checked("choice", divergence.parse),
    default=divergence.OnDivergence.WARN.value, envvar="STEPWISE_ON_DIVERGENCE",
    help="a run whose replay diverged from its stored history gets a warning (warn), or is "
    "also failed (fail)",
)  # fmt: skip
@options.option(
    "--poll-interval", type=options.SECONDS, default=1.0,
    help="seconds between looks for work when no notification comes",
)  # fmt: skip
@options.option(
    "--retention", type=options.Duration(), default=None, envvar="STEPWISE_RETENTION",
    help="delete runs finished longer ago than this (30d, 12h; off by default: keep them all)",
)  # fmt: skip
@options.option(
    "--max-log-records", type=options.Count(runlog.MAX_RECORDS),
    default=runlog.DEFAULT_MAX_RECORDS, envvar="STEPWISE_MAX_LOG_RECORDS",
    help="log lines kept per run (ctx.log and logging inside its steps); past this, one marker "
    "counts the lines dropped",
)  # fmt: skip
@options.max_payload_bytes
@options.health(0, "the health and metrics endpoint")
@options.option(
    "--backlog-metrics/--no-backlog-metrics", default=False, envvar="STEPWISE_BACKLOG_METRICS",
    help="also serve the database's backlog gauges (stepwise_runs, stepwise_backlog) on the "
    "health port: from one process per database (on Kubernetes the operator serves them)",
)  # fmt: skip
@options.serving
@options.wait_for_database
def worker(
    apps: tuple[str, ...],
    concurrency: int,
    lease: float,
    shutdown_grace: float,
    max_recovery_attempts: int,
    on_divergence: divergence.OnDivergence,
    poll_interval: float,
    retention: float | None,
    max_log_records: int,
    max_payload_bytes: int,
    health_port: int,
    health_host: str,
    backlog_metrics: bool,
    database_url: str,
    schema: str,
    wait_for_database: float,
) -> int:
    """Serve workflows: claim and execute runs until SIGTERM."""
    from stepwise.worker.worker import Worker

    async def serve() -> int:
        if not apps:
            raise StepwiseError(
                "no workflows to serve: pass --app FILE_OR_MODULE (or $STEPWISE_APP)"
            )
        if backlog_metrics and not health_port:
            raise ConfigurationError(
                "--backlog-metrics needs --health-port: the gauges are served there"
            )
        for app in apps:
            load_app(app)
        metrics = _worker_metrics() if health_port else None
        async with Client.connect(
            database_url,
            schema=schema,
            max_payload_bytes=max_payload_bytes,
            wait_for_database=wait_for_database,
        ) as client:
            worker = Worker(
                client,
                default_registry,
                concurrency=concurrency,
                lease_seconds=lease,
                poll_interval=poll_interval,
                shutdown_grace=shutdown_grace,
                listener=metrics,
                max_recovery_attempts=max_recovery_attempts,
                on_divergence=on_divergence,
                retention=retention,
                max_log_records=max_log_records,
            )
            stop = console.stop_on_signals()
            server = None
            if metrics is not None:
                try:
                    server = await metrics.serve(
                        worker, health_host, health_port, backlog_metrics=backlog_metrics
                    )
                except OSError as exc:
                    raise ConfigurationError(
                        f"cannot serve health checks on {health_host}:{health_port}: "
                        f"{exc.strerror or exc}"
                    ) from None
            try:
                await worker.run(stop)
            finally:
                if server is not None:
                    await server.cleanup()
        return 0

    return console.execute(telemetry.serving("stepwise-worker", serve()))


def _worker_metrics() -> metrics.Metrics:
    """The worker's metrics; their libraries come with the ``worker`` extra, which a plain
    install lacks: that is one line naming the extra, not a traceback."""
    try:
        from stepwise.worker import metrics
    except ModuleNotFoundError as exc:
        raise ConfigurationError(
            f"--health-port needs {exc.name}: pip install 'stepwise-workflows[worker]', "
            "or --health-port 0"
        ) from None
    return metrics.Metrics()
