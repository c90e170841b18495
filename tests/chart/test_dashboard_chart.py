"""The chart's optional dashboard: off by default; on, a Deployment that runs
``stepwise dashboard`` bound to the pod's own IP (downward API) and to its loopback (for
``kubectl port-forward``), never to every interface, with the database URL from the Secret the
workers read, a ClusterIP Service, and a ServiceAccount with no token and no RBAC."""

from __future__ import annotations

from typing import Any

from tests.chart.test_chart import container, env_of, find, helm, render

__all__ = ["helm"]  # the fixture, used by name

DASHBOARD = "demo-stepwise-dashboard"


def dashboard_objects(objects: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [
        (o["kind"], o["metadata"]["name"])
        for o in objects
        if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "dashboard"
    ]


def test_the_dashboard_is_off_by_default(helm: Any) -> None:
    assert dashboard_objects(render(helm, scenario="default-values.yaml")) == []


def test_the_dashboard_binds_the_pod_ip_and_reads_the_workers_secret(helm: Any) -> None:
    objects = render(helm, scenario="dashboard-values.yaml")
    assert sorted(dashboard_objects(objects)) == [
        ("Deployment", DASHBOARD),
        ("Service", DASHBOARD),
        ("ServiceAccount", DASHBOARD),
    ]
    deployment = find(objects, "Deployment", DASHBOARD)
    args = container(deployment)["args"]
    assert args[0] == "dashboard"
    hosts = [args[i + 1] for i, arg in enumerate(args) if arg == "--host"]
    assert hosts == ["$(POD_IP)", "127.0.0.1"]
    assert "0.0.0.0" not in " ".join(args)
    assert "--allow-actions" in args
    env = env_of(deployment)
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    worker_env = env_of(find(objects, "Deployment", "demo-stepwise-worker"))
    assert env["STEPWISE_DATABASE_URL"] == worker_env["STEPWISE_DATABASE_URL"]
    assert env["STEPWISE_SCHEMA"] == worker_env["STEPWISE_SCHEMA"]
    probe = container(deployment)["readinessProbe"]["httpGet"]
    assert probe == {"path": "/healthz", "port": "http"}

    spec = deployment["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == DASHBOARD
    assert spec["automountServiceAccountToken"] is False
    account = find(objects, "ServiceAccount", DASHBOARD)
    assert account["automountServiceAccountToken"] is False
    bound = [
        o for o in objects
        if o["kind"] in {"RoleBinding", "ClusterRoleBinding"}
        and any(s.get("name") == DASHBOARD for s in o.get("subjects", []))
    ]  # fmt: skip
    assert bound == []

    service = find(objects, "Service", DASHBOARD)
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 8484, "targetPort": "http"}]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_read_only_unless_actions_are_allowed(helm: Any) -> None:
    objects = render(helm, "dashboard.enabled=true", scenario="default-values.yaml")
    assert "--allow-actions" not in container(find(objects, "Deployment", DASHBOARD))["args"]


def test_the_dashboard_uses_an_existing_secret(helm: Any) -> None:
    objects = render(helm, "dashboard.enabled=true", scenario="existing-secret-values.yaml")
    url = env_of(find(objects, "Deployment", DASHBOARD))["STEPWISE_DATABASE_URL"]
    assert url["valueFrom"] == {"secretKeyRef": {"name": "stepwise-db", "key": "url"}}


def test_the_dashboard_answers_its_service_names_and_allow_hosts(helm: Any) -> None:
    objects = render(
        helm, "dashboard.allowHosts={dash.example.com}", scenario="dashboard-values.yaml"
    )
    args = container(find(objects, "Deployment", DASHBOARD))["args"]
    allowed = [args[i + 1] for i, arg in enumerate(args) if arg == "--allow-host"]
    assert allowed == [
        DASHBOARD,
        f"{DASHBOARD}.ns1",
        f"{DASHBOARD}.ns1.svc",
        f"{DASHBOARD}.ns1.svc.cluster.local",
        "dash.example.com",
    ]
