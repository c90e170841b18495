"""The chart's dashboard on a real kubelet: its pod gets Ready (probed on the pod IP it binds
from the downward API), its ClusterIP Service serves a WorkflowRun's run with the parallel
steps on the timeline, and the pod's loopback answers too, which is where
``kubectl port-forward`` connects."""

from __future__ import annotations

import re

import pytest

from tests.e2e.release import NodeCluster, Release, merge

pytestmark = [pytest.mark.kube, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def release(node_cluster: NodeCluster, namespace: str) -> Release:
    release = Release(node_cluster, namespace)
    values = merge(node_cluster.image_values(), release.marks_values())
    values = merge(values, {"dashboard": {"enabled": True}, "worker": {"replicas": 1}})
    release.helm("install", values)
    return release


def test_the_dashboard_serves_runs_from_its_pod(release: Release) -> None:
    (pod,) = release.ready_pods("dashboard")
    ip = release.pod(pod)["status"]["podIP"]
    log = release.plane.kubectl("logs", "-n", release.ns, pod).stdout
    assert f"stepwise dashboard serving http://{ip}:8484/" in log

    release.start("seen", [0.5, 0.5, 0.5])
    release.wait(lambda: release.phase("seen") == "Succeeded", "the run succeeds")
    run_id = release.wfr("seen")["status"]["runId"]
    service = f"{release.fullname}-dashboard"
    assert f'href="/runs/{run_id}"' in release.service_get(service, "/")
    page = release.service_get(service, f"/runs/{run_id}")
    assert len(re.findall(r'class="bar completed" data-step="slow-\d"', page)) == 3

    loopback = release.exec(
        pod, "python", "-c",
        "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8484/healthz').read())",
    )  # fmt: skip
    assert loopback.strip() == "b'ok\\n'"
