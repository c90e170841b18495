"""Fixtures of the end-to-end tests: one real node for this package (``harness/node.py``) on
its own control plane, whose API server listens on the node's bridge address; a namespace per
module, emptied and deleted afterwards so the next module finds a clean node."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from harness.controlplane import ControlPlane
from harness.errors import ControlPlaneError
from harness.node import Node
from harness.nodeconfig import NODE_IP
from harness.processes import sigterm_unwinds
from tests.e2e.release import CRD, NodeCluster


@pytest.fixture(scope="package")
def node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeCluster]:
    """Control plane + a Ready node with the images imported (built first if missing).

    Scoped to this package: the node is one per machine, so it is stopped (and its lock let go)
    when the end-to-end tests are done, and ``make dev-cluster``'s own test can start one."""
    root = tmp_path_factory.mktemp("node-cluster")
    node = Node(root / "node")
    plane = ControlPlane(root / "plane", controllers=True, scheduler=True, node_ip=NODE_IP)
    with sigterm_unwinds():
        try:
            node.prepare()
            plane.start()
            node.join(plane)
        except (ControlPlaneError, OSError, subprocess.SubprocessError, TimeoutError) as exc:
            node.stop()
            plane.stop()
            pytest.fail(f"could not start the test node: {exc}")
        try:
            yield NodeCluster(plane, node, root)
        finally:
            node.stop()
            plane.stop()


@pytest.fixture(scope="module")
def namespace(node_cluster: NodeCluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace for the module's releases; afterwards every release is uninstalled, the
    WorkflowRuns released, the namespace deleted (pods stopped, claims gone) and the volumes
    recycled."""
    plane = node_cluster.plane
    name = plane.api.create_namespace(
        request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    )
    yield name
    for release in plane.helm("list", "-n", name, "-q").stdout.split():
        plane.helm("uninstall", release, "-n", name, "--wait", "--timeout", "120s", check=False)
    if plane.kubectl("get", "crd", CRD, check=False).returncode == 0:
        # With the operator gone nothing removes the finalizers.
        for wfr in plane.kubectl("get", "wfr", "-n", name, "-o", "name").stdout.split():
            plane.kubectl(
                "patch", wfr, "-n", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}'
            )
    plane.api.delete_namespace(name, wait=True, timeout=180)
    node_cluster.node.recycle_volumes()
