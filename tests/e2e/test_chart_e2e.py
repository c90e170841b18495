"""The chart end to end, on real controllers: a killed worker pod's run resumes on its
replacement, and the completed steps do not run again.

``helm install`` puts the operator and a worker Deployment on the node agent (their
containers run as local processes: the host's install stands in for the image), with the
database pointed at the test PostgreSQL through values. The WorkflowRun that NOTES.txt
prints, applied exactly as printed, succeeds (``helm test`` too). A WorkflowRun of slow
parallel steps starts; once some steps have completed, the worker pod's process is SIGKILLed
and the Pod deleted. The ReplicaSet creates a replacement, the scheduler places it, the agent
starts it, and the run finishes there. Then ``helm upgrade`` adds a worker, and ``helm uninstall``
removes the Deployments but keeps the CRD and the WorkflowRuns.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.kube import ControlPlane, mapping_get, wait_until
from tests.plugins.nodeagent import NodeAgent

pytestmark = [pytest.mark.kube, pytest.mark.postgres, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "stepwise"
WORKFLOWS = Path(__file__).resolve().parent / "workflows.py"
EXAMPLE = REPO / "examples" / "fetch_all_data.py"  # the workflow NOTES.txt starts
RELEASE = "sw"
FULLNAME = f"{RELEASE}-stepwise"
CRD = "workflowruns.stepwise.dev"
LEASE_SECONDS = 3
# Three steps end within a second or two; three run long enough to be cut off by the kill.
DURATIONS = [0.5, 0.5, 1.0, 8.0, 8.0, 8.0]


def _values(ns: str, database_url: str, marks: Path) -> dict[str, Any]:
    return {
        "postgresql": {"enabled": False},
        "database": {"url": database_url},
        "operator": {"watchNamespaces": [ns], "logLevel": "DEBUG"},
        "worker": {
            "replicas": 1,
            "apps": [str(WORKFLOWS), str(EXAMPLE)],
            "leaseSeconds": LEASE_SECONDS,
            "shutdownGraceSeconds": 5,
            "logLevel": "DEBUG",
            "extraEnv": [{"name": "E2E_MARKS", "value": str(marks)}],
            "readinessProbe": {"periodSeconds": 1},
        },
    }


def _run(name: str, durations: list[float]) -> str:
    return json.dumps(
        {
            "apiVersion": "stepwise.dev/v1alpha1",
            "kind": "WorkflowRun",
            "metadata": {"name": name},
            "spec": {"workflow": "e2e-parallel", "input": {"durations": durations}},
        }
    )


class Marks:
    """The side-effect files of ``workflows.py``: which step executions started and ended."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _count(self, suffix: str) -> Counter[str]:
        return Counter(path.name.split(".", 1)[0] for path in self.root.glob(f"*.{suffix}"))

    def started(self) -> Counter[str]:
        return self._count("started")

    def done(self) -> Counter[str]:
        return self._count("done")

    def pids(self, step: str, suffix: str = "started") -> set[int]:
        return {int(path.name.split(".")[1]) for path in self.root.glob(f"{step}.*.{suffix}")}


class Cluster:
    """The handful of queries the scenario repeats, with failure reports that show the logs."""

    def __init__(self, kube: ControlPlane, ns: str, agent: NodeAgent) -> None:
        self.kube = kube
        self.ns = ns
        self.agent = agent

    def pods(self, component: str) -> list[dict[str, Any]]:
        selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component={component}"
        items: list[dict[str, Any]] = self.kube.kubectl_json(
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

    def wfr(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.kube.kubectl_json("get", "wfr", name, "-n", self.ns)
        return found

    def phase(self, name: str) -> str | None:
        phase: str | None = mapping_get(self.wfr(name), "status.phase")
        return phase

    def wait(self, check: Any, what: str, timeout: float = 90.0) -> Any:
        try:
            return wait_until(check, timeout=timeout, what=what)
        except TimeoutError as exc:
            pytest.fail(f"{exc}\n{self.agent.logs()}")


@pytest.fixture
def leave_nothing(kube: ControlPlane, kube_namespace: str, node_agent: NodeAgent) -> Iterator[None]:
    """Afterwards, pass or fail, no release and no WorkflowRun is left (before the node goes)."""
    yield
    kube.helm("uninstall", RELEASE, "-n", kube_namespace, "--ignore-not-found")
    _release_workflow_runs(kube, kube_namespace)


@pytest.mark.usefixtures("leave_nothing")
def test_killed_worker_pod_resumes_on_its_replacement(
    kube: ControlPlane,
    kube_namespace: str,
    node_agent: NodeAgent,
    postgres_url: str,
    tmp_path: Path,
) -> None:
    ns = kube_namespace
    cluster = Cluster(kube, ns, node_agent)
    marks = Marks(tmp_path / "marks")
    marks.root.mkdir()
    values = tmp_path / "values.json"
    values.write_text(json.dumps(_values(ns, postgres_url, marks.root)), encoding="utf-8")
    _let_release_adopt_crd(kube, ns)

    installed = kube.helm(
        "install", RELEASE, str(CHART), "-n", ns, "-f", str(values), "--wait", "--timeout", "180s"
    )
    notes = installed.stdout
    assert f"kubectl get wfr -n {ns} -w" in notes
    (operator,) = cluster.ready_pods("operator")
    (worker,) = cluster.ready_pods("worker")
    for pod in (operator, worker):
        assert kube.kubectl_json("get", "pod", pod, "-n", ns)["spec"]["nodeName"] == node_agent.name
    # /metrics on both, on the ports the chart's metrics Services point at.
    assert "stepwise_runs_started" in _get(node_agent.port(ns, worker), "/metrics")
    assert "stepwise_operator_workflowruns" in _get(node_agent.port(ns, operator), "/metrics")
    # `helm test`: a Pod with the chart's credentials reaches the database.
    tested = kube.helm("test", RELEASE, "-n", ns, "--timeout", "120s")
    assert "Phase:          Succeeded" in tested.stdout

    # NOTES.txt's first WorkflowRun, applied exactly as printed, succeeds.
    apply = re.search(r"^kubectl apply .*?^YAML$", notes, re.MULTILINE | re.DOTALL)
    assert apply, notes
    subprocess.run(["bash", "-c", apply[0]], env=kube.env(), check=True, capture_output=True)
    cluster.wait(lambda: cluster.phase("fetch-user-42") == "Succeeded", "NOTES.txt's run")
    assert cluster.wfr("fetch-user-42")["status"]["output"]["user"] == {"id": 42, "name": "user-42"}

    # A run of six parallel steps; wait until the three short ones are done.
    kube.apply(_run("crash", DURATIONS), namespace=ns)
    short = {f"slow-{i}" for i, seconds in enumerate(DURATIONS) if seconds < 2}
    long = {f"slow-{i}" for i in range(len(DURATIONS))} - short
    cluster.wait(
        lambda: set(marks.done()) >= short and set(marks.started()) >= long,
        "the short steps to complete while the long ones run",
        timeout=60,
    )
    assert not set(marks.done()) & long, "a long step ended before the kill: lengthen DURATIONS"

    # The crash: SIGKILL the worker's process, then delete its Pod.
    (killed_pid,) = node_agent.kill(ns, worker)
    kube.kubectl("delete", "pod", worker, "-n", ns, "--wait=false")
    # Still Running: the run stays leased to the dead worker until the lease runs out.
    cluster.wait(lambda: cluster.phase("crash") == "Running", "the status to say Running", 15)
    replacement = cluster.wait(
        lambda: (ready := cluster.ready_pods("worker")) and worker not in ready and ready,
        "the ReplicaSet's replacement worker pod to be ready",
    )[0]
    cluster.wait(lambda: cluster.phase("crash") == "Succeeded", "the run to succeed", timeout=120)

    run = cluster.wfr("crash")
    assert run["status"]["output"] == sum(DURATIONS)
    assert run["status"]["steps"] == f"{len(DURATIONS)}/{len(DURATIONS)}"
    assert run["status"]["claims"] >= 2
    started = marks.started()
    for step in short:  # completed before the crash: never ran again
        assert started[step] == 1, (step, started)
        assert marks.pids(step) == {killed_pid}
    replacement_pid = node_agent.pids(ns, replacement)["worker"]
    for step in long:  # cut off by the crash: ran again, to completion, on the replacement
        assert started[step] == 2, (step, started)
        assert marks.pids(step) == {killed_pid, replacement_pid}
        assert marks.pids(step, "done") == {replacement_pid}
    metrics = _get(node_agent.port(ns, replacement), "/metrics")
    assert f'stepwise_steps_total{{result="ok"}} {float(len(long))}' in metrics
    details = {step["name"]: step for step in run["status"]["stepDetails"]}
    assert {details[step]["attempts"] for step in short} == {1}
    table = kube.kubectl("get", "wfr", "crash", "-n", ns).stdout
    assert "Succeeded" in table
    assert f"{len(DURATIONS)}/{len(DURATIONS)}" in table

    # Upgrade: a second worker pod appears, and runs still complete.
    kube.helm(
        "upgrade", RELEASE, str(CHART), "-n", ns, "--reuse-values",
        "--set", "worker.replicas=2", "--wait", "--timeout", "180s",
    )  # fmt: skip
    workers = cluster.wait(
        lambda: len(ready := cluster.ready_pods("worker")) == 2 and ready,
        "two ready worker pods after the upgrade",
    )
    assert replacement in workers
    for pod in workers:
        assert node_agent.pids(ns, pod).keys() == {"worker"}
    history = json.loads(kube.helm("history", RELEASE, "-n", ns, "-o", "json").stdout)
    assert [entry["status"] for entry in history] == ["superseded", "deployed"]
    kube.apply(_run("after-upgrade", [0.2, 0.2]), namespace=ns)
    cluster.wait(lambda: cluster.phase("after-upgrade") == "Succeeded", "the second run")

    # Uninstall: the Deployments and their processes go; the CRD and the WorkflowRuns stay.
    pids = [pid for pod in workers for pid in node_agent.pids(ns, pod).values()]
    kube.helm("uninstall", RELEASE, "-n", ns, "--wait", "--timeout", "120s")
    # Gone for good: stopped by the agent (SIGTERM, grace), then removed from the API.
    cluster.wait(
        lambda: not kube.kubectl_json("get", "pods", "-n", ns)["items"],
        "the chart's pods to be gone",
    )
    assert not [pid for pid in pids if _is_running(pid)]
    assert kube.kubectl_json("get", "deployments", "-n", ns)["items"] == []
    kube.kubectl("get", "crd", CRD)
    left = kube.kubectl("get", "wfr", "-n", ns, "-o", "name").stdout.split()
    assert sorted(left) == [
        "workflowrun.stepwise.dev/after-upgrade",
        "workflowrun.stepwise.dev/crash",
        "workflowrun.stepwise.dev/fetch-user-42",
    ]
    _release_workflow_runs(kube, ns)


def _get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        body: bytes = response.read()
    return body.decode()


def _is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _let_release_adopt_crd(kube: ControlPlane, ns: str) -> None:
    """The CRD is cluster-wide and other tests may have applied it: mark it as this release's,
    the way an operator adopts an existing object into Helm."""
    if kube.kubectl("get", "crd", CRD, check=False).returncode != 0:
        return
    kube.kubectl("label", "crd", CRD, "--overwrite", "app.kubernetes.io/managed-by=Helm")
    kube.kubectl(
        "annotate", "crd", CRD, "--overwrite",
        f"meta.helm.sh/release-name={RELEASE}", f"meta.helm.sh/release-namespace={ns}",
    )  # fmt: skip


def _release_workflow_runs(kube: ControlPlane, ns: str) -> None:
    """With the operator gone nothing removes the finalizers: drop them and delete the
    WorkflowRuns, so that no later test's operator (watching every namespace) finds them."""
    if kube.kubectl("get", "crd", CRD, check=False).returncode != 0:
        return
    for name in kube.kubectl("get", "wfr", "-n", ns, "-o", "name").stdout.split():
        kube.kubectl(
            "patch", name, "-n", ns, "--type=merge", "-p", '{"metadata":{"finalizers":null}}'
        )
    kube.kubectl("delete", "wfr", "--all", "-n", ns, "--wait=true", "--timeout=60s")
