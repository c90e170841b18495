"""Fixtures of the end-to-end tests: a node whose Pods run as local processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.plugins.kube import ControlPlane
from tests.plugins.nodeagent import NodeAgent


@pytest.fixture
def node_agent(kube: ControlPlane, kube_namespace: str, tmp_path: Path) -> Iterator[NodeAgent]:
    """A Node that runs the Pods of this test's namespace (and only those) as processes."""
    agent = NodeAgent(
        kube, tmp_path / "node", name=f"node-{kube_namespace}", namespaces=[kube_namespace]
    )
    with agent:
        yield agent
