"""The controller-manager and scheduler do their part: Deployment -> ReplicaSet -> Pods (which
stay Pending: there is no node), ServiceAccounts and their admission, garbage collection,
namespace deletion, ClusterRole aggregation."""

from __future__ import annotations

from typing import Any

import pytest

from harness.controlplane import ControlPlane
from harness.errors import ApiError
from harness.kubeapi import mapping_get
from harness.processes import wait_until

pytestmark = pytest.mark.kube

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: registry.invalid/web:1}
"""


def _pods(kube: ControlPlane, ns: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = kube.api.request("GET", f"/api/v1/namespaces/{ns}/pods")["items"]
    return items


def _unschedulable(pod: dict[str, Any]) -> bool:
    conditions = mapping_get(pod, "status.conditions") or []
    return any(
        c["type"] == "PodScheduled"
        and c["status"] == "False"
        and c.get("reason") == "Unschedulable"
        for c in conditions
    )


def test_deployment_gets_replicaset_and_pending_pods(
    kube: ControlPlane, kube_namespace: str
) -> None:
    ns = kube_namespace
    kube.apply(DEPLOYMENT, namespace=ns)
    deployment = kube.api.request("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/web")

    def replicaset() -> dict[str, Any] | None:
        items = kube.api.request("GET", f"/apis/apps/v1/namespaces/{ns}/replicasets")["items"]
        return items[0] if items else None

    rs = wait_until(replicaset, timeout=30, what="the Deployment's ReplicaSet")
    assert rs["metadata"]["ownerReferences"][0]["uid"] == deployment["metadata"]["uid"]

    def two_pods() -> list[dict[str, Any]] | None:
        found = _pods(kube, ns)
        return found if len(found) == 2 else None

    pods = wait_until(two_pods, timeout=30, what="two Pods")
    for pod in pods:
        assert pod["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]
        assert pod["status"]["phase"] == "Pending"
        # ServiceAccount admission is on: the Pod runs as "default" with a projected token.
        assert pod["spec"]["serviceAccountName"] == "default"
        assert any("projected" in v for v in pod["spec"]["volumes"])
    # The scheduler looked at them and found no node.
    wait_until(
        lambda: all(_unschedulable(p) for p in _pods(kube, ns)),
        timeout=30,
        what="the scheduler to mark the Pods Unschedulable",
    )
    web = f"/apis/apps/v1/namespaces/{ns}/deployments/web"
    status = wait_until(
        lambda: kube.api.request("GET", web).get("status"),
        timeout=30,
        what="the Deployment status",
    )
    assert status.get("availableReplicas", 0) == 0


def test_garbage_collector_deletes_dependents(kube: ControlPlane, kube_namespace: str) -> None:
    ns = kube_namespace
    kube.apply(DEPLOYMENT, namespace=ns)
    wait_until(lambda: len(_pods(kube, ns)) == 2, timeout=30, what="two Pods")

    # Background propagation: only the garbage collector removes the ReplicaSet and Pods.
    kube.api.request(
        "DELETE",
        f"/apis/apps/v1/namespaces/{ns}/deployments/web",
        {"propagationPolicy": "Background"},
    )

    def dependents_gone() -> bool:
        rs = kube.api.request("GET", f"/apis/apps/v1/namespaces/{ns}/replicasets")["items"]
        return not rs and not _pods(kube, ns)

    wait_until(dependents_gone, timeout=60, what="the ReplicaSet and Pods to be collected")


def test_namespace_gets_service_account_and_root_ca(kube: ControlPlane) -> None:
    ns = kube.api.create_namespace("controllers")
    wait_until(
        lambda: kube.api.request("GET", f"/api/v1/namespaces/{ns}/serviceaccounts/default"),
        timeout=30,
        what="the default ServiceAccount",
    )
    root_ca = wait_until(
        lambda: kube.api.request("GET", f"/api/v1/namespaces/{ns}/configmaps/kube-root-ca.crt"),
        timeout=30,
        what="the kube-root-ca.crt ConfigMap",
    )
    assert kube.ca_file.read_text().strip() == root_ca["data"]["ca.crt"].strip()

    kube.kubectl("create", "configmap", "leftover", "-n", ns)
    # The namespace controller empties the namespace and removes its finalizer.
    kube.api.delete_namespace(ns, wait=True, timeout=60)
    with pytest.raises(ApiError) as gone:
        kube.api.request("GET", f"/api/v1/namespaces/{ns}")
    assert gone.value.status == 404


def test_cluster_roles_are_aggregated(kube: ControlPlane) -> None:
    def edit_rules() -> list[dict[str, Any]] | None:
        rules: list[dict[str, Any]] | None = kube.api.request(
            "GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/edit"
        ).get("rules")
        return rules

    rules = wait_until(edit_rules, timeout=30, what="the edit ClusterRole to be aggregated")
    assert any("deployments" in rule.get("resources", []) for rule in rules)

    kube.apply(
        """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: stepwise-test-view-extra
  labels: {rbac.authorization.k8s.io/aggregate-to-view: "true"}
rules:
- {apiGroups: [stepwise-test.example], resources: [things], verbs: [get]}
"""
    )
    try:
        wait_until(
            lambda: any(
                "things" in rule.get("resources", [])
                for rule in kube.api.request(
                    "GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/view"
                ).get("rules", [])
            ),
            timeout=30,
            what="the view ClusterRole to pick up the new rule",
        )
    finally:
        kube.kubectl("delete", "clusterrole", "stepwise-test-view-extra")
