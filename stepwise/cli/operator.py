"""``stepwise operator`` (kopf, embedded) and ``stepwise crds`` (the CRD YAML it serves)."""

from __future__ import annotations

import click

from stepwise.cli import console, options, telemetry


@click.command("operator")
@options.option(
    "--namespace", "namespaces", multiple=True, help="serve this namespace (repeatable)"
)
@options.option("--all-namespaces", is_flag=True, help="serve every namespace (the default)")
@options.option(
    "--metrics-workflow", "metrics_workflows", multiple=True,
    help="a workflow whose backlog gauges keep its own label while no worker has registered it "
    "(repeatable): to scale one workflow's workers from zero",
)  # fmt: skip
@options.health(8080, "the liveness endpoint /healthz")
@options.serving
@options.wait_for_database
def operator(
    namespaces: tuple[str, ...],
    all_namespaces: bool,
    metrics_workflows: tuple[str, ...],
    health_port: int,
    health_host: str,
    database_url: str,
    schema: str,
    wait_for_database: float,
) -> int:
    """Run the Kubernetes operator: WorkflowRuns start runs and mirror their progress."""
    from stepwise.operator import main as operator_main

    return console.execute(
        telemetry.serving(
            "stepwise-operator",
            operator_main.run(
                database_url=database_url,
                schema=schema,
                namespaces=namespaces,
                all_namespaces=all_namespaces or not namespaces,
                health_port=health_port,
                health_host=health_host,
                wait_for_database=wait_for_database,
                metrics_workflows=metrics_workflows,
            ),
        )
    )


@click.command("crds")
@options.option("--output", default=None, help="write one file here instead (-: stdout)")
@options.option("--check", is_flag=True, help="write nothing; fail if a committed copy drifts")
@options.log_level
def crds(output: str | None, check: bool) -> int:
    """Write the CRD YAML to crds/ and to the chart, from the operator's models."""
    from stepwise.operator import crd

    return crd.write_all(output=output, check=check)
