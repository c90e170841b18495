"""Argo Workflows, built here from its Go module (scripts/argo-tools.sh, argo-images.sh), runs
the benchmark's workload on the test node: its controller takes a Workflow of three parallel
no-op containers and a final one to Succeeded (``bench/argo.py`` installs and measures it).

Opt-in: the default run deselects the ``argo`` marker (a cold build of Argo takes 10-20 min on
2 cores, more than the default run affords), so it is neither run nor reported as skipped:

    flock /tmp/e2e.lock .venv/bin/pytest -m argo tests/e2e/test_argo.py
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.argo import ARGO_NAMESPACE, System, single, start_argo
from tests.e2e.release import NodeCluster

pytestmark = [
    pytest.mark.kube,
    pytest.mark.slow,
    pytest.mark.timeout(1800),
    pytest.mark.argo,
]


@pytest.fixture(scope="module")
def argo(node_cluster: NodeCluster) -> Iterator[System]:
    plane = node_cluster.plane
    system = start_argo(plane, node_cluster.node, print)
    yield system
    # The next module finds the node without Argo's controller and workflows.
    plane.api.delete_namespace(system.collection.split("/")[5], wait=True, timeout=180)
    plane.api.delete_namespace(ARGO_NAMESPACE, wait=True, timeout=180)


def test_the_argo_controller_runs_the_seed_shape_to_succeeded(
    argo: System, node_cluster: NodeCluster
) -> None:
    plane = node_cluster.plane
    single(plane, argo, 0)
    workflow = plane.api.request("GET", f"{argo.collection}/single-0")
    nodes = workflow["status"]["nodes"].values()
    pods = sorted(n["displayName"] for n in nodes if n["type"] == "Pod")
    assert pods == ["final", "step-0", "step-1", "step-2"]
    assert {n["phase"] for n in nodes} == {"Succeeded"}
