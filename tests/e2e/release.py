"""What the end-to-end tests do to a release of the chart on the test node, and what they
read back: pods and their readiness, WorkflowRuns, the step-execution marks of
``workflows.py`` (a hostPath the test reads), container processes on the host. Failures
carry the pods' state and the end of their logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.controlplane import ControlPlane
from harness.kubeapi import mapping_get
from harness.node import Node
from harness.processes import wait_until

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "stepwise"
CRD = "workflowruns.stepwise.dev"
CHART_CRDS = tuple(
    ".".join(reversed(path.stem.split("_", 1)))
    for path in sorted((CHART / "files" / "crds").glob("*.yaml"))
)
"""Every CRD the chart installs (its file ``stepwise.dev_workflowruns.yaml`` holds
``workflowruns.stepwise.dev``)."""


@dataclass
class NodeCluster:
    plane: ControlPlane
    node: Node
    root: Path

    def image(self, name: str) -> tuple[str, str]:
        """(repository, tag) of one of scripts/images.sh's images."""
        repository, _, tag = self.node.images[name][0].rpartition(":")
        return repository, tag

    def image_values(self) -> dict[str, Any]:
        """The chart's values that name the images built here (and nothing else)."""
        repository, tag = self.image("stepwise")
        pg_repository, pg_tag = self.image("stepwise-postgresql")
        return {
            "image": {"repository": repository, "tag": tag},
            "worker": {"image": self.node.images["stepwise-e2e"][0]},
            "postgresql": {"image": {"repository": pg_repository, "tag": pg_tag}},
        }


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Values merged the way Helm merges ``-f`` files."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class Marks:
    """The files ``workflows.py`` leaves per step execution of one run."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _names(self, suffix: str) -> list[list[str]]:
        return [path.name.split(".") for path in self.root.glob(f"*.{suffix}")]

    def started(self) -> Counter[str]:
        return Counter(parts[0] for parts in self._names("started"))

    def done(self) -> Counter[str]:
        return Counter(parts[0] for parts in self._names("done"))

    def processes(self, step: str, suffix: str = "started") -> set[str]:
        return {parts[1] for parts in self._names(suffix) if parts[0] == step}


class Release:
    """One release of the chart in a namespace of the test node."""

    def __init__(self, cluster: NodeCluster, namespace: str, name: str = "sw") -> None:
        self.cluster = cluster
        self.plane = cluster.plane
        self.ns = namespace
        self.name = name
        self.fullname = f"{name}-stepwise"
        self.marks_root = cluster.root / "marks" / namespace

    def marks_values(self) -> dict[str, Any]:
        """Values that mount the marks directory into the workers (it must be writable by the
        image's uid, hence created here with mode 0777)."""
        self.marks_root.mkdir(parents=True, exist_ok=True)
        self.marks_root.chmod(0o777)
        return {
            "worker": {
                "extraEnv": [{"name": "E2E_MARKS", "value": "/marks"}],
                "extraVolumes": [
                    {
                        "name": "marks",
                        "hostPath": {"path": str(self.marks_root), "type": "Directory"},
                    }
                ],
                "extraVolumeMounts": [{"name": "marks", "mountPath": "/marks"}],
            }
        }

    def helm(self, verb: str, values: dict[str, Any], *args: str) -> str:
        """``helm install|upgrade`` with ``values`` (as a file), waiting for readiness."""
        path = self.cluster.root / f"values-{self.ns}-{verb}.json"
        path.write_text(json.dumps(values), encoding="utf-8")
        self.adopt_crds()
        result = self.plane.helm(
            verb, self.name, str(CHART), "-n", self.ns, "-f", str(path),
            "--wait", "--timeout", "300s", *args, timeout=330,
        )  # fmt: skip
        return result.stdout

    def adopt_crds(self) -> None:
        """The CRDs are cluster-wide and kept by uninstall: mark those an earlier release left
        as this release's, the way an operator adopts existing objects into Helm."""
        for crd in CHART_CRDS:
            if self.plane.kubectl("get", "crd", crd, check=False).returncode != 0:
                continue
            self.plane.kubectl(
                "label", "crd", crd, "--overwrite", "app.kubernetes.io/managed-by=Helm"
            )
            self.plane.kubectl(
                "annotate", "crd", crd, "--overwrite",
                f"meta.helm.sh/release-name={self.name}",
                f"meta.helm.sh/release-namespace={self.ns}",
            )  # fmt: skip

    # ---- reading ----

    def pods(self, component: str) -> list[dict[str, Any]]:
        selector = f"app.kubernetes.io/instance={self.name},app.kubernetes.io/component={component}"
        items: list[dict[str, Any]] = self.plane.kubectl_json(
            "get", "pods", "-n", self.ns, "-l", selector
        )["items"]
        return [pod for pod in items if not pod["metadata"].get("deletionTimestamp")]

    def ready_pods(self, component: str) -> list[str]:
        return sorted(
            pod["metadata"]["name"]
            for pod in self.pods(component)
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in mapping_get(pod, "status.conditions") or []
            )
        )

    def pod(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.plane.kubectl_json("get", "pod", name, "-n", self.ns)
        return found

    def container_pid(self, pod: str, container: str) -> int:
        """The host pid of the container's process (PID 1 inside it)."""
        statuses = self.pod(pod)["status"]["containerStatuses"]
        (status,) = [s for s in statuses if s["name"] == container]
        return self.cluster.node.container_pid(status["containerID"])

    def exec(self, pod: str, *command: str) -> str:
        """``kubectl exec``: through the API server to the kubelet, by client certificate."""
        return self.plane.kubectl("exec", "-n", self.ns, pod, "--", *command).stdout

    def wfr(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.plane.kubectl_json("get", "wfr", name, "-n", self.ns)
        return found

    def phase(self, name: str) -> str | None:
        phase: str | None = mapping_get(self.wfr(name), "status.phase")
        return phase

    def marks(self, wfr: str) -> Marks:
        return Marks(self.marks_root / self.wfr(wfr)["status"]["runId"])

    def service_get(self, service: str, path: str) -> str:
        """GET through a Service's ClusterIP (kube-proxy's rules) from the host."""
        spec = self.plane.kubectl_json("get", "service", service, "-n", self.ns)["spec"]
        url = f"http://{spec['clusterIP']}:{spec['ports'][0]['port']}{path}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body: bytes = response.read()
        return body.decode()

    # ---- acting ----

    def start(self, name: str, durations: list[float]) -> None:
        self.plane.apply(
            json.dumps(
                {
                    "apiVersion": "stepwise.dev/v1alpha1",
                    "kind": "WorkflowRun",
                    "metadata": {"name": name},
                    "spec": {"workflow": "e2e-parallel", "input": {"durations": durations}},
                }
            ),
            namespace=self.ns,
        )

    def kill(self, pod: str, container: str) -> int:
        """SIGKILL the container's process from the host, as the OOM killer would."""
        pid = self.container_pid(pod, container)
        os.kill(pid, signal.SIGKILL)
        return pid

    def wait(self, check: Any, what: str, timeout: float = 120.0) -> Any:
        try:
            return wait_until(check, timeout=timeout, interval=0.5, what=what)
        except TimeoutError as exc:
            pytest.fail(f"{exc}\n{self.diagnostics()}")

    def diagnostics(self) -> str:
        """Pods, events and the end of each container's log: what a failure report needs."""
        parts = [self.plane.kubectl("get", "pods,pvc,wfr", "-n", self.ns, "-o", "wide").stdout]
        events = self.plane.kubectl("get", "events", "-n", self.ns, check=False)
        parts.append("\n".join(events.stdout.splitlines()[-30:]))
        for pod in self.plane.kubectl_json("get", "pods", "-n", self.ns)["items"]:
            logs = self.plane.kubectl(
                "logs", "-n", self.ns, pod["metadata"]["name"], "--all-containers",
                "--tail=30", check=False,
            )  # fmt: skip
            parts.append(f"--- {pod['metadata']['name']}\n{logs.stdout}{logs.stderr}")
        return "\n".join(parts)

    def runs_in_database(self, workflow: str) -> int:
        """How many runs of ``workflow`` the database holds (asked from a worker pod)."""
        (worker, *_) = self.ready_pods("worker")
        table = self.exec(
            worker, "stepwise", "runs", "list", "--workflow", workflow, "--limit", "500"
        )
        return sum(1 for line in table.splitlines() if workflow in line)


def shell(command: str, plane: ControlPlane) -> subprocess.CompletedProcess[str]:
    """Run a shell snippet (NOTES.txt's) with kubectl on PATH and this cluster's kubeconfig."""
    return subprocess.run(
        ["bash", "-c", command], env=plane.env(), check=True, capture_output=True, text=True
    )
