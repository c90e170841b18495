"""Fixtures of a real Kubernetes control plane (``harness.controlplane``).

``kube`` is one control plane per session, controllers and scheduler on; ``kube_namespace``
is a fresh namespace per test. Every test that uses them is marked ``kube``; a control plane
that cannot start fails the test, never skips it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from harness.controlplane import ControlPlane
from harness.errors import ControlPlaneError
from harness.processes import sigterm_unwinds
from harness.tools import BUILD_HINT


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """The session's control plane: etcd, kube-apiserver, controller-manager and scheduler."""
    plane = ControlPlane(tmp_path_factory.mktemp("kube"), controllers=True, scheduler=True)
    with sigterm_unwinds():
        try:
            plane.start()
        except (ControlPlaneError, OSError, subprocess.SubprocessError) as exc:
            hint = "" if BUILD_HINT in str(exc) else f"\n(binaries missing or stale? {BUILD_HINT})"
            pytest.fail(f"could not start the test Kubernetes control plane: {exc}{hint}")
        try:
            yield plane
        finally:
            plane.stop()


@pytest.fixture
def kube_namespace(kube: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test, deleted (without waiting) afterwards."""
    name = kube.api.create_namespace(request.node.name.split("[", 1)[0].removeprefix("test_"))
    yield name
    kube.api.delete_namespace(name)


_KUBE_FIXTURES = {"kube", "kube_namespace"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        uses_kube = bool(_KUBE_FIXTURES.intersection(fixtures))
        if uses_kube and item.get_closest_marker("kube") is None:
            item.add_marker(pytest.mark.kube)
