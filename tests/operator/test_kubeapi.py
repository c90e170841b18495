"""The mirror's three Kubernetes calls, made as the operator makes them: through
``kubernetes_asyncio`` on the event loop, as the chart's ServiceAccount. A status write and a
delete reach exactly the resource meant (a new one under the same name is another: the
mirror forgets the old one instead of retrying it), an Event lands, and a server that cannot
be reached is a ``KubeError``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config

from harness.controlplane import ControlPlane
from harness.processes import free_port
from stepwise.operator import models
from stepwise.operator.kubeapi import KubeApi, KubeError, NotFound, ObjectRef
from tests.operator.conftest import OperatorHarness

pytestmark = [pytest.mark.kube, pytest.mark.postgres]


@pytest.fixture
async def kube_api(operator: OperatorHarness) -> AsyncIterator[KubeApi]:
    """A ``KubeApi`` with the operator's credentials: exactly the chart's RBAC."""
    configuration = k8s.Configuration()
    await k8s_config.load_kube_config(str(operator.kubeconfig), client_configuration=configuration)
    async with k8s.ApiClient(configuration) as api_client:
        yield KubeApi(api_client, instance="test")


def create(kube: ControlPlane, namespace: str, name: str) -> ObjectRef:
    body = {
        "apiVersion": models.API_VERSION,
        "kind": models.KIND,
        "metadata": {"name": name},
        "spec": {"workflow": "nothing"},
    }
    kube.apply(json.dumps(body), namespace=namespace)
    found = kube.kubectl_json("get", "wfr", name, "-n", namespace)
    return ObjectRef(namespace, name, found["metadata"]["uid"])


async def test_status_event_and_delete_reach_exactly_the_resource_meant(
    kube: ControlPlane, kube_api: KubeApi, kube_namespace: str
) -> None:
    old = create(kube, kube_namespace, "one")

    await kube_api.replace_status(old, {"phase": "Running", "runId": old.uid})
    await kube_api.post_event(old, reason="Started", message="started", warning=False)
    found = kube.kubectl_json("get", "wfr", "one", "-n", kube_namespace)
    assert found["status"] == {"phase": "Running", "runId": old.uid}
    events = kube.kubectl_json(
        "get", "events", "-n", kube_namespace, "--field-selector", "involvedObject.name=one"
    )["items"]
    assert [(e["reason"], e["involvedObject"]["uid"]) for e in events] == [("Started", old.uid)]

    await kube_api.replace_status(old, {"phase": "Pending"})  # replaces: no stale key survives
    assert kube.kubectl_json("get", "wfr", "one", "-n", kube_namespace)["status"] == {
        "phase": "Pending"
    }

    kube.kubectl("delete", "wfr", "one", "-n", kube_namespace)
    new = create(kube, kube_namespace, "one")
    with pytest.raises(NotFound):
        await kube_api.replace_status(old, {"phase": "Succeeded"})
    await kube_api.delete(old)  # gone already: fine, and the new one stays
    assert "status" not in kube.kubectl_json("get", "wfr", "one", "-n", kube_namespace)

    await kube_api.delete(new)
    gone = kube.kubectl("get", "wfr", "one", "-n", kube_namespace, "--ignore-not-found")
    assert gone.stdout.strip() == ""
    assert kube_api.requests == {"status": 3, "event": 1, "delete": 2}


async def test_an_unreachable_server_is_a_kube_error() -> None:
    configuration = k8s.Configuration(host=f"https://127.0.0.1:{free_port()}")
    async with k8s.ApiClient(configuration) as api_client:
        api = KubeApi(api_client, instance="test")
        ref = ObjectRef("default", "nowhere", "uid")
        with pytest.raises(KubeError, match="cannot reach the API server"):
            await api.replace_status(ref, {})
        await api.post_event(ref, reason="Started", message="", warning=False)  # only logged
