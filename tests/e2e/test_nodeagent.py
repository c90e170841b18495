"""The test node agent behaves like a kubelet where the chart's end-to-end test relies on it:
Deployments get running, ready Pods; env comes from Secrets, ConfigMaps and the Pod itself;
a crashed container restarts; a deleted Pod's process stops and its replacement starts; Pods
that run to completion end Succeeded or Failed; a container whose Secret is missing waits for
it; a ServiceAccount token is mounted only when the Pod asks for one, and nothing else of the
agent's environment leaks in."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.kube import ControlPlane, mapping_get, wait_until
from tests.plugins.nodeagent import NodeAgent

pytestmark = pytest.mark.kube

# Records its environment, then serves /ready on the port the agent gives it.
SERVER = """
import http.server, json, os, pathlib
out = pathlib.Path(os.environ["OUT"]) / (os.environ["POD"] + ".json")
out.write_text(json.dumps(dict(os.environ)))
class Ready(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/ready" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
port = int(os.environ["STEPWISE_HEALTH_PORT"])
http.server.HTTPServer(("127.0.0.1", port), Ready).serve_forever()
"""

# Records its environment and exits with $CODE.
ONESHOT = """
import json, os, pathlib, sys
out = pathlib.Path(os.environ["OUT"]) / (os.environ["POD"] + ".json")
out.write_text(json.dumps(dict(os.environ)))
sys.exit(int(os.environ["CODE"]))
"""


def _env_var(name: str, source: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "valueFrom": source}


def _deployment(out: Path) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "terminationGracePeriodSeconds": 20,
                    "containers": [
                        {
                            "name": "web",
                            "image": "registry.invalid/web:1",
                            "command": ["python", "-c", SERVER],
                            "env": [
                                {"name": "OUT", "value": str(out)},
                                _env_var("POD", {"fieldRef": {"fieldPath": "metadata.name"}}),
                                _env_var(
                                    "GREETING", {"secretKeyRef": {"name": "s", "key": "greeting"}}
                                ),
                                _env_var(
                                    "COLOUR", {"configMapKeyRef": {"name": "c", "key": "colour"}}
                                ),
                                _env_var(
                                    "ABSENT",
                                    {"secretKeyRef": {"name": "s", "key": "no", "optional": True}},
                                ),
                                {"name": "STEPWISE_HEALTH_PORT", "value": "8080"},
                            ],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "readinessProbe": {
                                "httpGet": {"path": "/ready", "port": "http"},
                                "periodSeconds": 1,
                            },
                        }
                    ],
                },
            },
        },
    }


def _pods(kube: ControlPlane, ns: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kube.api("GET", f"/api/v1/namespaces/{ns}/pods")["items"]
    return items


def _ready(pod: dict[str, Any]) -> bool:
    conditions = mapping_get(pod, "status.conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _one_ready_pod(kube: ControlPlane, ns: str, *, not_named: str = "") -> dict[str, Any] | None:
    pods = [p for p in _pods(kube, ns) if not p["metadata"].get("deletionTimestamp")]
    if len(pods) == 1 and _ready(pods[0]) and pods[0]["metadata"]["name"] != not_named:
        return pods[0]
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text()


def test_deployment_pod_runs_restarts_and_is_replaced(
    kube: ControlPlane, kube_namespace: str, node_agent: NodeAgent, tmp_path: Path
) -> None:
    ns = kube_namespace
    kube.kubectl("create", "secret", "generic", "s", "-n", ns, "--from-literal=greeting=hello")
    kube.kubectl("create", "configmap", "c", "-n", ns, "--from-literal=colour=teal")
    kube.apply(json.dumps(_deployment(tmp_path)), namespace=ns)

    pod = wait_until(
        lambda: _one_ready_pod(kube, ns), timeout=60, what=f"a ready pod\n{node_agent.logs()}"
    )
    name = pod["metadata"]["name"]
    assert pod["spec"]["nodeName"] == node_agent.name
    assert pod["status"]["phase"] == "Running"
    status = pod["status"]["containerStatuses"][0]
    assert (status["ready"], status["restartCount"]) == (True, 0)
    assert "running" in status["state"]
    wait_until(
        lambda: (
            mapping_get(
                kube.api("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/web"),
                "status.availableReplicas",
            )
            == 1
        ),
        timeout=30,
        what="the Deployment to count the pod available",
    )

    env = json.loads((tmp_path / f"{name}.json").read_text())
    assert (env["GREETING"], env["COLOUR"], env["POD"], env["HOSTNAME"]) == (
        "hello",
        "teal",
        name,
        name,
    )
    assert "ABSENT" not in env
    assert env["STEPWISE_HEALTH_PORT"] != "8080"  # the agent's own port for this container
    assert "KUBECONFIG" in env  # the default ServiceAccount's token is automounted

    # A crash: the container restarts in the same Pod.
    (first_pid,) = node_agent.kill(ns, name)
    wait_until(lambda: not _pid_alive(first_pid), timeout=10, what="the killed process to end")

    def restarted() -> dict[str, Any] | None:
        found = _one_ready_pod(kube, ns)
        ok = found and found["status"]["containerStatuses"][0]["restartCount"] == 1
        return found if ok else None

    pod = wait_until(restarted, timeout=60, what=f"the container to restart\n{node_agent.logs()}")
    assert pod["metadata"]["name"] == name
    last = pod["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert last["exitCode"] == 128 + signal.SIGKILL

    # Deletion: SIGTERM ends the process, the agent removes the Pod, the ReplicaSet replaces it.
    (second_pid,) = node_agent.pids(ns, name).values()
    kube.kubectl("delete", "pod", name, "-n", ns, "--wait=false")
    wait_until(lambda: not _pid_alive(second_pid), timeout=30, what="the deleted pod's process")
    replacement = wait_until(
        lambda: _one_ready_pod(kube, ns, not_named=name),
        timeout=60,
        what=f"a ready replacement pod\n{node_agent.logs()}",
    )
    assert replacement["spec"]["nodeName"] == node_agent.name
    wait_until(
        lambda: name not in {p["metadata"]["name"] for p in _pods(kube, ns)},
        timeout=30,
        what="the deleted pod to be removed for good",
    )


def _oneshot(
    name: str, out: Path, code: int, *, automount: bool, env: tuple[dict[str, Any], ...] = ()
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": automount,
            "containers": [
                {
                    "name": "main",
                    "image": "registry.invalid/job:1",
                    "command": ["python3", "-c", ONESHOT],
                    "env": [
                        {"name": "OUT", "value": str(out)},
                        {"name": "POD", "value": name},
                        {"name": "CODE", "value": str(code)},
                        *env,
                    ],
                }
            ],
        },
    }


def test_pods_run_to_completion_with_or_without_a_token_and_wait_for_secrets(
    kube: ControlPlane, kube_namespace: str, node_agent: NodeAgent, tmp_path: Path
) -> None:
    ns = kube_namespace
    wait_until(
        lambda: kube.api("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default"),
        timeout=30,
        what="the default ServiceAccount",
    )
    kube.apply(json.dumps(_oneshot("ok", tmp_path, 0, automount=True)), namespace=ns)
    kube.apply(json.dumps(_oneshot("bad", tmp_path, 3, automount=False)), namespace=ns)
    later = _env_var("LATER", {"secretKeyRef": {"name": "later", "key": "value"}})
    late = _oneshot("late", tmp_path, 0, automount=False, env=(later,))
    kube.apply(json.dumps(late), namespace=ns)

    # The Secret "late" needs does not exist yet: it waits, as a kubelet's container would.
    def waiting_reason() -> str | None:
        pod = kube.api("GET", f"/api/v1/namespaces/{ns}/pods/late")
        state = (mapping_get(pod, "status.containerStatuses") or [{}])[0].get("state", {})
        reason: str | None = state.get("waiting", {}).get("reason")
        return reason

    assert (
        wait_until(waiting_reason, timeout=30, what="the pod to wait for its Secret")
        == "CreateContainerConfigError"
    )
    kube.kubectl("create", "secret", "generic", "later", "-n", ns, "--from-literal=value=now")

    def phases() -> dict[str, str] | None:
        found = {p["metadata"]["name"]: p["status"].get("phase") for p in _pods(kube, ns)}
        return found if set(found.values()) <= {"Succeeded", "Failed"} else None

    assert wait_until(phases, timeout=60, what=f"the pods to end\n{node_agent.logs()}") == {
        "ok": "Succeeded",
        "bad": "Failed",
        "late": "Succeeded",
    }
    assert json.loads((tmp_path / "late.json").read_text())["LATER"] == "now"
    bad = kube.api("GET", f"/api/v1/namespaces/{ns}/pods/bad")
    assert bad["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3

    with_token = json.loads((tmp_path / "ok.json").read_text())
    whoami = kube.kubectl(
        "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}",
        kubeconfig=Path(with_token["KUBECONFIG"]),
    )  # fmt: skip
    assert whoami.stdout == f"system:serviceaccount:{ns}:default"
    # Nothing of the agent's own environment leaks in, and no credentials without the volume.
    without = json.loads((tmp_path / "bad.json").read_text())
    assert set(without) - {"LC_CTYPE"} == {
        "PATH", "HOSTNAME", "HOME", "TMPDIR", "PYTHONUNBUFFERED",
        "OUT", "POD", "CODE", "STEPWISE_HEALTH_PORT",
    }  # fmt: skip
