"""Helm against the real API server: a local chart installs (its kubeVersion constraint sees
the real server version), and uninstall removes what it created."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.controlplane import ControlPlane
from harness.errors import ApiError
from harness.processes import wait_until
from harness.tools import read_versions

pytestmark = pytest.mark.kube

CHART_YAML = """\
apiVersion: v2
name: tiny
version: 0.1.0
appVersion: "1.0"
# Fails on a server that reports v0.0.0-master (no version ldflags in the build).
kubeVersion: ">=1.30.0-0"
"""

VALUES_YAML = """\
greeting: hello
"""

TEMPLATE = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
  labels:
    app.kubernetes.io/name: {{ .Chart.Name }}
    app.kubernetes.io/instance: {{ .Release.Name }}
data:
  greeting: {{ .Values.greeting | quote }}
  kubeVersion: {{ .Capabilities.KubeVersion.Version | quote }}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ .Release.Name }}-runner
---
apiVersion: v1
kind: Service
metadata:
  name: {{ .Release.Name }}-web
spec:
  selector:
    app.kubernetes.io/instance: {{ .Release.Name }}
  ports:
  - port: 80
"""


def _write_chart(root: Path) -> Path:
    chart = root / "tiny"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(CHART_YAML, encoding="utf-8")
    (chart / "values.yaml").write_text(VALUES_YAML, encoding="utf-8")
    (chart / "templates" / "all.yaml").write_text(TEMPLATE, encoding="utf-8")
    return chart


def test_helm_install_and_uninstall(
    kube: ControlPlane, kube_namespace: str, tmp_path: Path
) -> None:
    ns = kube_namespace
    chart = _write_chart(tmp_path)
    kube.helm("lint", str(chart))

    kube.helm("install", "demo", str(chart), "-n", ns, "--set", "greeting=hi")

    releases = json.loads(kube.helm("list", "-n", ns, "-o", "json").stdout)
    assert [(r["name"], r["status"]) for r in releases] == [("demo", "deployed")]
    settings = kube.kubectl_json("get", "configmap", "demo-settings", "-n", ns)
    assert settings["data"] == {
        "greeting": "hi",
        "kubeVersion": read_versions()["KUBE_VERSION"],
    }
    assert settings["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    objects = [
        f"/api/v1/namespaces/{ns}/configmaps/demo-settings",
        f"/api/v1/namespaces/{ns}/serviceaccounts/demo-runner",
        f"/api/v1/namespaces/{ns}/services/demo-web",
    ]
    for path in objects:
        kube.api.request("GET", path)

    kube.helm("uninstall", "demo", "-n", ns, "--wait", "--timeout", "60s")

    def all_gone() -> bool:
        for path in objects:
            try:
                kube.api.request("GET", path)
            except ApiError as exc:
                if exc.status == 404:
                    continue
                raise
            return False
        return True

    wait_until(all_gone, timeout=30, what="helm uninstall to remove the chart's objects")
    assert json.loads(kube.helm("list", "-n", ns, "-o", "json").stdout) == []
    release_secrets = kube.kubectl(
        "get", "secrets", "-n", ns, "-l", "owner=helm", "-o", "name"
    ).stdout
    assert release_secrets.strip() == ""
