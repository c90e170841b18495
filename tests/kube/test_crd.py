"""CRD behaviour the operator relies on, checked against the real API server: printer columns,
a CEL validation rule, and the status subresource keeping spec and status apart."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from harness.controlplane import ControlPlane
from harness.errors import ToolError
from harness.processes import wait_until

pytestmark = pytest.mark.kube

CRD_TEMPLATE = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.{group}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: gadgets, singular: gadget, kind: Gadget}}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {{}}
    additionalPrinterColumns:
    - {{name: Size, type: integer, jsonPath: .spec.size}}
    - {{name: Colour, type: string, jsonPath: .spec.colour}}
    - {{name: Phase, type: string, jsonPath: .status.phase}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {{type: integer, minimum: 1}}
              colour: {{type: string}}
            x-kubernetes-validations:
            - rule: "self.size <= 10"
              message: "size must be at most 10"
          status:
            type: object
            properties:
              phase: {{type: string}}
"""


@pytest.fixture(scope="module")
def gadget_crd(kube: ControlPlane) -> Iterator[str]:
    """A test-only CRD in its own API group; returns the group. Deleted after the module."""
    group = f"g{secrets.token_hex(3)}.test.stepwise.dev"
    kube.apply(CRD_TEMPLATE.format(group=group))
    kube.kubectl("wait", "--for=condition=Established", f"crd/gadgets.{group}", "--timeout=60s")
    yield group
    kube.kubectl("delete", f"crd/gadgets.{group}", "--wait=false")


def _gadget(group: str, name: str, size: int, colour: str = "red") -> str:
    return (
        f"apiVersion: {group}/v1\nkind: Gadget\nmetadata: {{name: {name}}}\n"
        f"spec: {{size: {size}, colour: {colour}}}\n"
    )


def _apply_gadget(kube: ControlPlane, ns: str, manifest: str) -> None:
    # Discovery of a just-established CRD can lag a moment behind in a new kubectl process.
    wait_until(
        lambda: kube.apply(manifest, namespace=ns), timeout=30, what="the gadget to be applied"
    )


def test_printer_columns(kube: ControlPlane, kube_namespace: str, gadget_crd: str) -> None:
    _apply_gadget(kube, kube_namespace, _gadget(gadget_crd, "small", 3, "blue"))

    table = kube.kubectl("get", f"gadgets.{gadget_crd}", "-n", kube_namespace).stdout
    header, row = table.splitlines()
    # Exactly the declared columns (custom columns replace the default AGE); no status yet.
    assert header.split() == ["NAME", "SIZE", "COLOUR", "PHASE"]
    assert row.split() == ["small", "3", "blue"]


def test_cel_rule_rejects_with_its_message(
    kube: ControlPlane, kube_namespace: str, gadget_crd: str
) -> None:
    _apply_gadget(kube, kube_namespace, _gadget(gadget_crd, "ok", 10))  # the boundary passes

    with pytest.raises(ToolError) as excinfo:
        kube.apply(_gadget(gadget_crd, "huge", 11), namespace=kube_namespace)

    assert "size must be at most 10" in excinfo.value.stderr
    assert "Invalid value" in excinfo.value.stderr
    missing = kube.kubectl(
        "get", f"gadgets.{gadget_crd}", "huge", "-n", kube_namespace, check=False
    )
    assert missing.returncode != 0
    assert "NotFound" in missing.stderr


def test_status_subresource_keeps_spec_and_status_apart(
    kube: ControlPlane, kube_namespace: str, gadget_crd: str
) -> None:
    _apply_gadget(kube, kube_namespace, _gadget(gadget_crd, "g", 2))
    resource = f"gadgets.{gadget_crd}"

    # Through /status: status changes, the spec part of the patch is ignored.
    kube.kubectl(
        "patch", resource, "g", "-n", kube_namespace, "--subresource=status", "--type=merge",
        "-p", '{"status": {"phase": "Ready"}, "spec": {"size": 9}}',
    )  # fmt: skip
    gadget = kube.kubectl_json("get", resource, "g", "-n", kube_namespace)
    assert gadget["status"] == {"phase": "Ready"}
    assert gadget["spec"]["size"] == 2

    # Through the main resource: spec changes, the status part is ignored.
    kube.kubectl(
        "patch", resource, "g", "-n", kube_namespace, "--type=merge",
        "-p", '{"status": {"phase": "Broken"}, "spec": {"size": 4}}',
    )  # fmt: skip
    gadget = kube.kubectl_json("get", resource, "g", "-n", kube_namespace)
    assert gadget["status"] == {"phase": "Ready"}
    assert gadget["spec"]["size"] == 4

    row = kube.kubectl("get", resource, "g", "-n", kube_namespace, "--no-headers").stdout
    assert row.split() == ["g", "4", "red", "Ready"]
