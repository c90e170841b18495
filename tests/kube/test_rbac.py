"""RBAC is enforced for real: a ServiceAccount acting through its own minted kubeconfig is
denied until a RoleBinding grants it exactly what the Role lists."""

from __future__ import annotations

import pytest

from harness.controlplane import ControlPlane
from harness.errors import ApiError, ToolError
from harness.processes import wait_until

pytestmark = pytest.mark.kube

ROLE = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: configmap-reader}
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: bot-reads-configmaps}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: configmap-reader}
subjects:
- {kind: ServiceAccount, name: bot, namespace: NAMESPACE}
"""


def test_service_account_denied_then_allowed(kube: ControlPlane, kube_namespace: str) -> None:
    ns = kube_namespace
    bot = kube.service_account_kubeconfig(ns, "bot")
    user = f"system:serviceaccount:{ns}:bot"
    whoami = kube.kubectl(
        "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", kubeconfig=bot
    )
    assert whoami.stdout == user

    with pytest.raises(ToolError) as denied:
        kube.kubectl("get", "configmaps", "-n", ns, kubeconfig=bot)
    assert "Forbidden" in denied.value.stderr
    assert f'User "{user}" cannot list resource "configmaps"' in denied.value.stderr
    # The same through the API directly: a real 403, not a client-side refusal.
    token = kube.api.create_token(ns, "bot")
    with pytest.raises(ApiError) as api_denied:
        kube.api.request("GET", f"/api/v1/namespaces/{ns}/configmaps", token=token)
    assert api_denied.value.status == 403

    kube.kubectl("create", "configmap", "settings", "-n", ns, "--from-literal=a=b")
    kube.apply(ROLE.replace("NAMESPACE", ns), namespace=ns)

    # The authorizer's RBAC cache follows the binding within moments: poll, don't sleep.
    listed = wait_until(
        lambda: kube.kubectl("get", "configmaps", "-n", ns, "-o", "name", kubeconfig=bot),
        timeout=30,
        what="the RoleBinding to take effect",
    )
    assert "configmap/settings" in listed.stdout.split()
    can_i = kube.kubectl("auth", "can-i", "list", "configmaps", "-n", ns, kubeconfig=bot)
    assert can_i.stdout.strip() == "yes"
    # Only what the Role lists: no writes, nothing in other namespaces.
    cannot = kube.kubectl(
        "auth", "can-i", "delete", "configmaps", "-n", ns, kubeconfig=bot, check=False
    )
    assert cannot.stdout.strip() == "no"
    with pytest.raises(ToolError) as elsewhere:
        kube.kubectl("get", "configmaps", "-n", "default", kubeconfig=bot)
    assert "Forbidden" in elsewhere.value.stderr
