"""The chart on a real kubelet, with default values except the image names: every pod gets
Ready (the bundled PostgreSQL StatefulSet on a local volume included), ``helm test`` passes,
and the WorkflowRun NOTES.txt prints succeeds. The runtime enforces the chart's
securityContext, checked from inside the containers; a worker whose readiness probe fails
leaves its Service's endpoints, and returns when it answers again."""

from __future__ import annotations

import os
import re
import signal

import pytest

from harness.kubeapi import mapping_get
from harness.nodeconfig import NODE_NAME
from tests.e2e.release import NodeCluster, Release, shell

pytestmark = [pytest.mark.kube, pytest.mark.slow, pytest.mark.timeout(900)]

# What /proc/1/status says of a process of the non-root uid with no capabilities at all.
NO_CAPABILITIES = "0000000000000000"


@pytest.fixture(scope="module")
def installed(node_cluster: NodeCluster, namespace: str) -> tuple[Release, str]:
    release = Release(node_cluster, namespace)
    return release, release.helm("install", node_cluster.image_values())


def test_install_helm_test_and_the_notes_run(installed: tuple[Release, str]) -> None:
    release, notes = installed
    assert len(release.ready_pods("operator")) == 1
    assert len(release.ready_pods("worker")) == 2  # the chart's default
    assert release.ready_pods("postgresql") == [f"{release.fullname}-postgresql-0"]
    for component in ("operator", "worker", "postgresql"):
        for pod in release.pods(component):
            assert pod["spec"]["nodeName"] == NODE_NAME
    (claim,) = release.plane.kubectl_json("get", "pvc", "-n", release.ns)["items"]
    assert claim["status"]["phase"] == "Bound"

    # `helm test`: a pod with the chart's credentials reaches the database by its Service name.
    tested = release.plane.helm("test", release.name, "-n", release.ns, "--timeout", "180s")
    assert "Phase:          Succeeded" in tested.stdout

    # NOTES.txt's first WorkflowRun, applied exactly as printed, succeeds.
    apply = re.search(r"^kubectl apply .*?^YAML$", notes, re.MULTILINE | re.DOTALL)
    assert apply, notes
    shell(apply[0], release.plane)
    release.wait(lambda: release.phase("fetch-user-42") == "Succeeded", "NOTES.txt's run")
    output = release.wfr("fetch-user-42")["status"]["output"]
    assert output["user"] == {"id": 42, "name": "user-42"}

    # The workers' metrics Service, through kube-proxy's rules: the run was counted.
    metrics = release.service_get(f"{release.fullname}-worker-metrics", "/metrics")
    assert "stepwise_runs_started" in metrics


def _status(release: Release, pod: str, container: str) -> dict[str, str]:
    """/proc/1/status of the container, read from inside it."""
    text = release.plane.kubectl(
        "exec", "-n", release.ns, pod, "-c", container, "--", "cat", "/proc/1/status"
    ).stdout
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


@pytest.mark.parametrize(
    ("component", "container", "uid"),
    [
        ("operator", "operator", 10001),
        ("worker", "worker", 10001),
        ("postgresql", "postgresql", 999),
    ],
)
def test_the_runtime_enforces_the_security_context(
    installed: tuple[Release, str], component: str, container: str, uid: int
) -> None:
    release, _ = installed
    pod = release.ready_pods(component)[0]
    status = _status(release, pod, container)
    assert status["Uid"].split() == [str(uid)] * 4
    assert status["Gid"].split() == [str(uid)] * 4
    for capabilities in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert status[capabilities].strip() == NO_CAPABILITIES, capabilities
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"  # filter mode: the runtime's default profile
    # The root filesystem is read-only; only the chart's volumes are writable.
    write = release.plane.kubectl(
        "exec", "-n", release.ns, pod, "-c", container, "--",
        "sh", "-c", "touch /probe 2>&1; touch /tmp/probe && echo tmp-ok",
        check=False,
    )  # fmt: skip
    assert "Read-only file system" in write.stdout
    assert "tmp-ok" in write.stdout


def _endpoint_ready(release: Release, pod: str) -> bool | None:
    """Whether the worker Service's EndpointSlices list ``pod`` as ready (None: not listed)."""
    slices = release.plane.kubectl_json(
        "get", "endpointslices", "-n", release.ns,
        "-l", f"kubernetes.io/service-name={release.fullname}-worker-metrics",
    )["items"]  # fmt: skip
    for endpoint in (e for s in slices for e in s.get("endpoints") or []):
        if mapping_get(endpoint, "targetRef.name") == pod:
            return bool(mapping_get(endpoint, "conditions.ready"))
    return None


def test_a_worker_failing_readiness_leaves_the_service_endpoints(
    installed: tuple[Release, str],
) -> None:
    release, _ = installed
    stuck, other = release.ready_pods("worker")
    release.wait(lambda: _endpoint_ready(release, stuck), "the worker among the endpoints")
    # A stopped process answers no probe: /readyz times out, as for a wedged worker.
    pid = release.container_pid(stuck, "worker")
    os.kill(pid, signal.SIGSTOP)
    try:
        release.wait(
            lambda: _endpoint_ready(release, stuck) is not True,
            "the stuck worker to leave the ready endpoints",
        )
        assert _endpoint_ready(release, other) is True
    finally:
        os.kill(pid, signal.SIGCONT)
    release.wait(lambda: _endpoint_ready(release, stuck), "the worker to be ready again")
