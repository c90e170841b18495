"""The chart's dashboard on a real kubelet: its pod gets Ready (probed on the pod IP it binds
from the downward API), its ClusterIP Service serves a WorkflowRun's run with the parallel
steps on the timeline, and the ``kubectl port-forward`` that NOTES.txt prints reaches it (on
the pod's loopback, the other address it binds)."""

from __future__ import annotations

import re
import subprocess
import urllib.request

import pytest

from harness.processes import wait_until
from tests.e2e.release import NodeCluster, Release, merge

pytestmark = [pytest.mark.kube, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def installed(node_cluster: NodeCluster, namespace: str) -> tuple[Release, str]:
    release = Release(node_cluster, namespace)
    values = merge(node_cluster.image_values(), release.marks_values())
    values = merge(values, {"dashboard": {"enabled": True}, "worker": {"replicas": 1}})
    return release, release.helm("install", values)


def test_the_dashboard_serves_runs_from_its_pod(installed: tuple[Release, str]) -> None:
    release, notes = installed
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

    # NOTES.txt's port-forward, on a free local port instead of 8484.
    printed = re.search(r"^  (kubectl port-forward .*) 8484$", notes, re.MULTILINE)
    assert printed, notes
    with subprocess.Popen(
        [*printed[1].split(), ":8484"],
        env=release.plane.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as forward:
        try:
            assert forward.stdout is not None
            line = forward.stdout.readline()  # Forwarding from 127.0.0.1:PORT -> 8484
            port = re.search(r"127\.0\.0\.1:(\d+) -> 8484", line)
            assert port, line
            url = f"http://127.0.0.1:{port[1]}/healthz"
            wait_until(lambda: _get(url) == "ok\n", timeout=60, interval=0.5, what="port-forward")
        finally:
            forward.terminate()


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body: bytes = response.read()
    except OSError:
        return None
    return body.decode()
