"""The operator's RBAC is least privilege, as the API server's authorizer sees it.

The other operator tests prove the rules are *enough* (the operator runs under exactly them);
these prove they are *no more*: each allowed action is one the operator makes, everything
else is refused.
"""

from __future__ import annotations

import pytest

from harness.controlplane import ControlPlane
from tests.operator.conftest import OperatorHarness

pytestmark = pytest.mark.kube

NEEDED = [
    ("list", "workflowruns.stepwise.dev"),  # kopf's watch
    ("watch", "workflowruns.stepwise.dev"),
    ("patch", "workflowruns.stepwise.dev"),  # finalizer, kopf's annotations
    ("delete", "workflowruns.stepwise.dev"),  # ttlSecondsAfterFinished
    ("patch", "workflowruns.stepwise.dev/status"),  # the mirror
    ("create", "workflowruns.stepwise.dev"),  # a schedule's ticks
    ("list", "workflowschedules.stepwise.dev"),
    ("watch", "workflowschedules.stepwise.dev"),
    ("patch", "workflowschedules.stepwise.dev"),  # kopf's annotations
    ("patch", "workflowschedules.stepwise.dev/status"),  # the schedule's timer
    ("list", "workflowsignals.stepwise.dev"),
    ("watch", "workflowsignals.stepwise.dev"),
    ("patch", "workflowsignals.stepwise.dev"),  # kopf's annotations, the owner reference
    ("patch", "workflowsignals.stepwise.dev/status"),  # Delivered, Refused
    ("create", "events"),
]
NOT_NEEDED = [
    ("update", "workflowruns.stepwise.dev"),
    ("create", "workflowschedules.stepwise.dev"),
    ("delete", "workflowschedules.stepwise.dev"),
    ("create", "workflowsignals.stepwise.dev"),
    ("delete", "workflowsignals.stepwise.dev"),
    ("get", "workflowruns.stepwise.dev"),
    ("update", "workflowruns.stepwise.dev/status"),
    ("patch", "events"),
    ("get", "secrets"),
    ("list", "configmaps"),
    ("list", "pods"),
    ("create", "pods"),
    ("create", "serviceaccounts/token"),
    ("create", "kopfpeerings.kopf.dev"),
]


def can_i(kube: ControlPlane, op: OperatorHarness, verb: str, what: str, *where: str) -> bool:
    resource, _, sub = what.partition("/")
    args = ["auth", "can-i", verb, resource, *(["--subresource", sub] if sub else []), *where]
    answer = kube.kubectl(*args, kubeconfig=op.kubeconfig, check=False).stdout.strip()
    assert answer in ("yes", "no"), answer
    return answer == "yes"


@pytest.mark.parametrize("mode", ["operator", "cluster_operator"])
def test_allowed_exactly_what_the_operator_does(
    kube: ControlPlane, kube_namespace: str, mode: str, request: pytest.FixtureRequest
) -> None:
    op: OperatorHarness = request.getfixturevalue(mode)
    here = ("-n", kube_namespace)
    elsewhere = ("-n", "default")

    refused = [(v, r) for v, r in NEEDED if not can_i(kube, op, v, r, *here)]
    assert not refused, f"{op.user} lacks what the operator needs: {refused}"
    granted = [(v, r) for v, r in NOT_NEEDED if can_i(kube, op, v, r, *here)]
    assert not granted, f"{op.user} has more than the operator needs: {granted}"

    for verb in ("list", "watch"):
        assert can_i(kube, op, verb, "customresourcedefinitions.apiextensions.k8s.io")
    for verb in ("create", "delete", "patch"):
        assert not can_i(kube, op, verb, "customresourcedefinitions.apiextensions.k8s.io")
    assert not can_i(kube, op, "delete", "namespaces")
    # A namespaced operator reaches its own namespace only; the default one reaches them all.
    served_elsewhere = can_i(kube, op, "patch", "workflowruns.stepwise.dev", *elsewhere)
    assert served_elsewhere is op.all_namespaces
    assert can_i(kube, op, "create", "events", *elsewhere) is op.all_namespaces
