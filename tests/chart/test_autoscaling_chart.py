"""The chart's optional autoscaling and Grafana dashboard: off by default; KEDA's ScaledObject
(a Prometheus trigger on the runs due and running) or an autoscaling/v2 HPA on an External
metric, never both, and then the Deployment leaves ``replicas`` to the autoscaler; the
dashboard's JSON in a ConfigMap for Grafana's sidecar, naming only metrics that a real worker
and the backlog gauges serve."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from harness.processes import free_port
from harness.workers import Procs, wait_until
from tests.chart.test_chart import CHART, container, find, helm, render
from tests.worker.test_backlog_metrics import ECHO, FLOWS, runs, scrape

__all__ = ["helm"]  # the fixture, used by name

WORKER = "demo-stepwise-worker"
DASHBOARD_JSON = CHART / "files" / "grafana" / "stepwise.json"
AUTOSCALERS = {"ScaledObject", "HorizontalPodAutoscaler"}


def test_nothing_scales_and_no_dashboard_by_default(helm: Any) -> None:
    objects = render(helm, scenario="default-values.yaml")
    assert not [o for o in objects if o["kind"] in AUTOSCALERS]
    assert not [o for o in objects if o["metadata"]["name"].endswith("grafana-dashboard")]
    assert find(objects, "Deployment", WORKER)["spec"]["replicas"] == 2


def test_keda_scales_the_workers_on_the_backlog(helm: Any) -> None:
    objects = render(
        helm,
        "worker.autoscaling.keda.enabled=true",
        "worker.autoscaling.keda.minReplicas=0",
        "worker.concurrency=25",
        scenario="default-values.yaml",
    )
    scaled = find(objects, "ScaledObject", WORKER)
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"] == {"name": WORKER}
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (0, 10)
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    assert trigger["metadata"] == {
        "serverAddress": "http://prometheus-operated.monitoring.svc:9090",
        "query": 'sum(stepwise_backlog{namespace="ns1"}) + '
        'sum(stepwise_runs{namespace="ns1",status="running"})',
        "threshold": "25",  # one pod per worker.concurrency of work
    }
    assert "replicas" not in find(objects, "Deployment", WORKER)["spec"]
    assert not [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]


def test_keda_takes_a_query_and_threshold_of_ones_own(helm: Any) -> None:
    query = 'sum(stepwise_backlog{workflow="ingest"})'
    objects = render(
        helm,
        "worker.autoscaling.keda.enabled=true",
        f"worker.autoscaling.keda.query={query}",
        "worker.autoscaling.keda.threshold=5",
        scenario="default-values.yaml",
    )
    metadata = find(objects, "ScaledObject", WORKER)["spec"]["triggers"][0]["metadata"]
    assert (metadata["query"], metadata["threshold"]) == (query, "5")


def test_an_hpa_on_an_external_metric(helm: Any) -> None:
    objects = render(helm, scenario="autoscaling-values.yaml")
    hpa = find(objects, "HorizontalPodAutoscaler", WORKER)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": WORKER,
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 20)
    assert hpa["spec"]["metrics"] == [
        {
            "type": "External",
            "external": {
                "metric": {"name": "stepwise_backlog"},
                "target": {"type": "AverageValue", "averageValue": "25"},
            },
        }
    ]
    assert "replicas" not in find(objects, "Deployment", WORKER)["spec"]


def test_keda_and_an_hpa_together_are_refused(helm: Any) -> None:
    result = helm(
        "template", "demo", str(CHART),
        "--set", "worker.autoscaling.keda.enabled=true",
        "--set", "worker.autoscaling.hpa.enabled=true",
        check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "turn on keda or hpa, not both" in result.stderr


def test_the_operator_names_the_workflows_to_scale_from_zero(helm: Any) -> None:
    objects = render(
        helm, "operator.metricsWorkflows={ingest,report}", scenario="default-values.yaml"
    )
    args = container(find(objects, "Deployment", "demo-stepwise-operator"))["args"]
    assert args[-4:] == ["--metrics-workflow", "ingest", "--metrics-workflow", "report"]
    default = render(helm, scenario="default-values.yaml")
    assert (
        "--metrics-workflow"
        not in container(find(default, "Deployment", "demo-stepwise-operator"))["args"]
    )


def test_the_grafana_dashboard_goes_into_a_configmap_for_the_sidecar(helm: Any) -> None:
    objects = render(
        helm, "metrics.grafanaDashboard.namespace=grafana", scenario="autoscaling-values.yaml"
    )
    config = find(objects, "ConfigMap", "demo-stepwise-grafana-dashboard")
    assert config["metadata"]["namespace"] == "grafana"
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config["data"]["stepwise.json"]) == json.loads(DASHBOARD_JSON.read_text())


def dashboard_metric_names() -> set[str]:
    """The metric names the dashboard's queries read (PromQL functions and labels aside)."""
    dashboard = json.loads(DASHBOARD_JSON.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            exprs.append(variable["query"]["query"])
    return {name for expr in exprs for name in re.findall(r"\b(?:stepwise|process)_\w+", expr)}


def test_the_dashboard_shows_runs_step_latency_and_backlog() -> None:
    dashboard = json.loads(DASHBOARD_JSON.read_text())
    titles = [panel["title"] for panel in dashboard["panels"]]
    assert "Runs finished per second" in titles
    assert "Step latency" in titles
    assert "Backlog: runs due, by workflow" in titles
    names = dashboard_metric_names()
    assert {"stepwise_runs_finished_total", "stepwise_step_seconds_bucket"} <= names
    assert "stepwise_backlog" in names


@pytest.mark.postgres
def test_every_metric_of_the_dashboard_is_served(
    postgres_url: str, procs: Procs, tmp_path: Path
) -> None:
    """Scrape a real worker (serving the backlog gauges too, as the operator does) after a run,
    and find each name the dashboard queries among its samples."""
    port = free_port()
    args = ["--health-port", str(port), "--health-host", "127.0.0.1", "--backlog-metrics"]
    worker = procs.worker(FLOWS, postgres_url, args=args, ready=True)
    done = procs.cli("start", ECHO, "--input", "{}", "--wait", "--database-url", postgres_url)
    assert done.returncode == 0, done.stderr
    wait_until(lambda: runs(scrape(port), ECHO, "pending") == 0, 30, "the gauges in /metrics")
    served = {name for name, _ in scrape(port)}
    missing = dashboard_metric_names() - served
    assert not missing, f"the dashboard queries metrics no one serves: {sorted(missing)}"
    worker.terminate()
    assert worker.wait(30) == 0
