"""Argo Workflows beside stepwise, on the same real node (``harness/node.py``; needs root).

Argo's workflow-controller and argoexec are built here from their Go module
(``scripts/argo-tools.sh``) into images on the project's Debian base
(``scripts/argo-images.sh``); its CRDs, RBAC and controller Deployment come from the module's
own ``manifests/cluster-install``. stepwise is the chart with its bundled PostgreSQL, the
workers loading ``bench/argo_flow.py``. The workload is the seed's shape: three parallel no-op
steps, then a final one; on Argo a DAG whose every step is a container running ``true`` in the
Debian base image.

Measured on both: one run, create -> Succeeded (p50 of ``SINGLE``); ``BATCH`` runs created at
once -> all Succeeded; API requests per run during the batch (every client's, from the
apiserver's ``apiserver_request_total``, less this benchmark's own requests); Pods created per
run (the apiserver's ``POST pods``); the controller's / operator's peak RSS (``VmHWM`` of the
container's process on the host). Only one node runs per machine: run it as
``flock /tmp/e2e.lock python -m bench --only argo``.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench import argo_flow
from bench.k8s import CREATORS, _peak_rss_mib
from bench.machine import load_average
from harness.controlplane import ControlPlane
from harness.node import Node
from harness.nodeconfig import NODE_IP
from stepwise.operator import models

REPO = Path(__file__).resolve().parent.parent
SINGLE = 10
BATCH = 100
TIMEOUT = 900.0
POLL = 0.1
ENDED = ("Succeeded", "Failed", "Error")
ARGO_NAMESPACE = "argo"
_REQUEST = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>[\d.e+]+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class System:
    """How the benchmark creates one run of a system and reads its phase."""

    name: str
    collection: str
    body: Callable[[str], dict[str, Any]]
    controller_pid: Callable[[], int]


def _sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, cwd=REPO).stdout


def _images() -> dict[str, tuple[str, Path]]:
    """name -> (ref, docker-archive) of scripts/argo-images.sh's images (built if missing)."""
    out = _sh("bash", str(REPO / "scripts" / "argo-images.sh"))
    return {n: (ref, Path(a)) for n, ref, a in (line.split() for line in out.splitlines())}


def _requests(plane: ControlPlane) -> Counter[tuple[str, str]]:
    """Every API request so far, by (verb, resource[/subresource])."""
    counts: Counter[tuple[str, str]] = Counter()
    for line in plane.kubectl("get", "--raw", "/metrics").stdout.splitlines():
        match = _REQUEST.match(line)
        if match is None:
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        resource = labels.get("resource", "") + (
            "/" + labels["subresource"] if labels.get("subresource") else ""
        )
        counts[(labels.get("verb", ""), resource)] += int(float(match["value"]))
    return counts


def _pod_pid(plane: ControlPlane, node: Node, namespace: str, selector: str) -> int:
    (pod,) = plane.kubectl_json("get", "pods", "-n", namespace, "-l", selector)["items"]
    (status,) = pod["status"]["containerStatuses"]
    return node.container_pid(status["containerID"])


def _wait(check: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not done after {timeout:.0f}s")
        time.sleep(POLL)


# ---- Argo ----


def argo_workflow(name: str, image: str) -> dict[str, Any]:
    """The seed's shape as an Argo DAG: step-0..2 in parallel, then final; each ``true``."""
    parallel = [{"name": f"step-{i}", "template": "noop"} for i in range(3)]
    final = {"name": "final", "template": "noop", "dependencies": [t["name"] for t in parallel]}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {
            "entrypoint": "main",
            "serviceAccountName": "argo-bench",
            # Without it, every step's Pod stays: 400 Pods would fill the node.
            "podGC": {"strategy": "OnPodCompletion"},
            "templates": [
                {"name": "main", "dag": {"tasks": [*parallel, final]}},
                {
                    "name": "noop",
                    "container": {
                        "image": image,
                        "imagePullPolicy": "Never",
                        "command": ["true"],
                    },
                },
            ],
        },
    }


def _argo_install(install: Path, controller: str, executor: str) -> str:
    """Argo's cluster install, less argo-server, the controller on the images built here."""
    docs = [d for d in yaml.safe_load_all(install.read_text()) if d]
    kept = [d for d in docs if "argo-server" not in d["metadata"]["name"]]
    for doc in kept:
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "workflow-controller":
            (container,) = doc["spec"]["template"]["spec"]["containers"]
            container["image"] = controller
            container["imagePullPolicy"] = "Never"
            container["args"] = [
                "--executor-image", executor, "--executor-image-pull-policy", "Never",
            ]  # fmt: skip
    return yaml.safe_dump_all(kept)


def _argo_executor_rbac(namespace: str) -> str:
    """What argoexec needs in the workflows' namespace (Argo's quick-start grants the same)."""
    meta = {"name": "argo-bench", "namespace": namespace}
    return yaml.safe_dump_all(
        [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": meta,
                "rules": [
                    {
                        "apiGroups": ["argoproj.io"],
                        "resources": ["workflowtaskresults"],
                        "verbs": ["create", "patch"],
                    }
                ],
            },
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": meta,
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": "argo-bench",
                },
                "subjects": [
                    {"kind": "ServiceAccount", "name": "argo-bench", "namespace": namespace}
                ],
            },
        ]
    )


def start_argo(plane: ControlPlane, node: Node, log: Callable[[str], None]) -> System:
    images = _images()
    for _ref, archive in images.values():
        node.ctr("images", "import", str(archive))
    argo_dir = Path(_sh("bash", str(REPO / "scripts" / "argo-tools.sh")).splitlines()[-1])
    plane.api.request("POST", "/api/v1/namespaces", {"metadata": {"name": ARGO_NAMESPACE}})
    manifest = _argo_install(
        argo_dir / "manifests" / "install.yaml",
        images["argo-workflow-controller"][0],
        images["argoexec"][0],
    )
    plane.kubectl("apply", "--server-side", "-f", "-", input=manifest, timeout=300)
    plane.kubectl(
        "wait", "--for=condition=Established", "crd/workflows.argoproj.io", "--timeout=60s"
    )
    plane.kubectl(
        "rollout", "status", "deploy/workflow-controller", "-n", ARGO_NAMESPACE,
        "--timeout=300s", timeout=330,
    )  # fmt: skip
    namespace = plane.api.create_namespace("argo-bench")
    plane.apply(_argo_executor_rbac(namespace))
    log(f"  argo {argo_dir.name} controller up")
    step_image = images["stepwise-base"][0]
    return System(
        name="argo",
        collection=f"/apis/argoproj.io/v1alpha1/namespaces/{namespace}/workflows",
        body=lambda name: argo_workflow(name, step_image),
        controller_pid=lambda: _pod_pid(plane, node, ARGO_NAMESPACE, "app=workflow-controller"),
    )


# ---- stepwise ----


def _start_stepwise(
    plane: ControlPlane, node: Node, apps: Path, log: Callable[[str], None]
) -> System:
    """The chart with default values but the images built here and the workload mounted."""
    namespace = plane.api.create_namespace("stepwise-bench")
    repository, _, tag = node.images["stepwise"][0].rpartition(":")
    pg_repository, _, pg_tag = node.images["stepwise-postgresql"][0].rpartition(":")
    values = {
        "image": {"repository": repository, "tag": tag},
        "postgresql": {"image": {"repository": pg_repository, "tag": pg_tag}},
        "worker": {
            "apps": [f"/bench/{Path(argo_flow.__file__).name}"],
            "extraVolumes": [
                {"name": "bench", "hostPath": {"path": str(apps), "type": "Directory"}}
            ],
            "extraVolumeMounts": [{"name": "bench", "mountPath": "/bench", "readOnly": True}],
        },
    }
    path = apps.parent / "stepwise-values.json"
    path.write_text(json.dumps(values), encoding="utf-8")
    plane.helm(
        "install", "sw", str(REPO / "charts" / "stepwise"), "-n", namespace, "-f", str(path),
        "--wait", "--timeout", "300s", timeout=330,
    )  # fmt: skip
    log("  stepwise chart up")
    return System(
        name="stepwise",
        collection=f"/apis/{models.GROUP}/{models.VERSION}/namespaces/{namespace}/{models.PLURAL}",
        body=lambda name: {
            "apiVersion": models.API_VERSION,
            "kind": models.KIND,
            "metadata": {"name": name},
            "spec": {"workflow": argo_flow.WORKFLOW, "input": {}},
        },
        controller_pid=lambda: _pod_pid(
            plane, node, namespace, "app.kubernetes.io/component=operator"
        ),
    )


# ---- the measurements ----


def _phase(plane: ControlPlane, system: System, name: str) -> str | None:
    item = plane.api.request("GET", f"{system.collection}/{name}")
    phase: str | None = (item.get("status") or {}).get("phase")
    if phase in ("Failed", "Error"):
        raise RuntimeError(f"{system.name} run {name} ended {phase}: {item.get('status')}")
    return phase


def single(plane: ControlPlane, system: System, i: int) -> float:
    name = f"single-{i}"
    t0 = time.perf_counter()
    plane.api.request("POST", system.collection, system.body(name))
    _wait(lambda: _phase(plane, system, name) == "Succeeded", f"{system.name} {name}")
    return time.perf_counter() - t0


def _batch(plane: ControlPlane, system: System, runs: int) -> dict[str, Any]:
    before = _requests(plane)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(CREATORS) as pool:
        list(
            pool.map(
                lambda i: plane.api.request("POST", system.collection, system.body(f"batch-{i}")),
                range(runs),
            )
        )
    lists = 0
    while True:
        items = plane.api.request("GET", system.collection)["items"]
        lists += 1
        phases = Counter((it.get("status") or {}).get("phase") or "-" for it in items)
        # A run that fails under the load is a figure too (Argo's did at load 80): count it.
        if sum(phases[p] for p in ENDED) >= runs + SINGLE:
            break
        if time.perf_counter() - t0 > TIMEOUT:
            raise RuntimeError(f"{system.name}: not all Succeeded after {TIMEOUT:.0f}s: {phases}")
        time.sleep(0.25)
    seconds = time.perf_counter() - t0
    time.sleep(5.0)  # what the controller does after the last phase (pod GC, events)
    delta = _requests(plane) - before
    resource = system.collection.rsplit("/", 1)[1]
    ours = Counter({("POST", resource): runs, ("LIST", resource): lists})
    theirs = delta - ours
    total = sum(theirs.values())
    top = sorted(theirs.items(), key=lambda kv: -kv[1])[:12]
    return {
        "runs": runs,
        "ended": {p: phases[p] - (SINGLE if p == "Succeeded" else 0) for p in ENDED if phases[p]},
        "all_succeeded_seconds": round(seconds, 2),
        "api_requests_per_run": round(total / runs, 1),
        "pods_created_per_run": round(theirs[("POST", "pods")] / runs, 2),
        "api_requests_top": {f"{verb} {res}": n for (verb, res), n in top},
    }


def _measure(plane: ControlPlane, system: System, log: Callable[[str], None]) -> dict[str, Any]:
    singles = [single(plane, system, i) for i in range(SINGLE)]
    log(f"  {system.name}: one run p50 {statistics.median(singles):.2f}s")
    batch = _batch(plane, system, BATCH)
    log(
        f"  {system.name}: {BATCH} runs ended in {batch['all_succeeded_seconds']}s,"
        f" {batch['ended']},"
        f" {batch['api_requests_per_run']} API requests/run,"
        f" {batch['pods_created_per_run']} Pods/run"
    )
    return {
        "single_run_p50_seconds": round(statistics.median(singles), 2),
        "single_run_seconds": [round(s, 2) for s in singles],
        "batch": batch,
        "controller_peak_rss_mib": _peak_rss_mib(system.controller_pid()),
    }


@contextmanager
def _cluster(root: Path) -> Iterator[tuple[ControlPlane, Node]]:
    node = Node(root / "node")
    plane = ControlPlane(root / "plane", controllers=True, scheduler=True, node_ip=NODE_IP)
    try:
        node.prepare()
        plane.start()
        node.join(plane)
        yield plane, node
    finally:
        node.stop()
        plane.stop()


def run(*, log: Callable[[str], None]) -> dict[str, Any]:
    if os.geteuid() != 0:
        raise RuntimeError("the argo suite runs a real node: run it as root")
    with tempfile.TemporaryDirectory(prefix="stepwise-argo-bench-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        apps = root / "apps"
        apps.mkdir(mode=0o755)
        (apps / Path(argo_flow.__file__).name).write_text(Path(argo_flow.__file__).read_text())
        with _cluster(root) as (plane, node):
            systems = [start_argo(plane, node, log), _start_stepwise(plane, node, apps, log)]
            load = load_average()
            results: dict[str, Any] = {s.name: _measure(plane, s, log) for s in systems}
    argo, ours = results["argo"], results["stepwise"]

    def ratio(key: Callable[[dict[str, Any]], float]) -> float | None:
        theirs, mine = key(argo), key(ours)
        return round(theirs / mine, 1) if mine else None

    results["ratios_argo_over_stepwise"] = {
        "single_run_p50": ratio(lambda r: r["single_run_p50_seconds"]),
        "batch_all_succeeded": ratio(lambda r: r["batch"]["all_succeeded_seconds"]),
        "api_requests_per_run": ratio(lambda r: r["batch"]["api_requests_per_run"]),
        "controller_peak_rss": ratio(lambda r: r["controller_peak_rss_mib"]),
    }
    results["load_average"] = load
    results["argo_version"] = Path(
        _sh("bash", str(REPO / "scripts" / "argo-tools.sh"), "--print-dir").strip()
    ).name.removeprefix("argo-")
    return results
