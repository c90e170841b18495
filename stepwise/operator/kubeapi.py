"""The three Kubernetes calls the operator makes outside kopf's handlers: write a status,
post an Event, delete a finished resource.

kopf owns the watch and the handler bookkeeping; the mirror writes status on its own clock
(when Postgres says a run changed), so it needs its own client. It uses the official
``kubernetes`` client (synchronous) on its own ``THREADS`` threads; every call is short.
Credentials come from the pod's ServiceAccount in a cluster, else from the kubeconfig
(``$KUBECONFIG``), as for kopf itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import HTTPError as TransportError

from stepwise.operator import models

log = logging.getLogger("stepwise.operator")

REQUEST_TIMEOUT = 15.0
THREADS = 32
"""Kubernetes calls in flight at once (each holds a thread and a pooled connection)."""
COMPONENT = "stepwise-operator"
"""The Events' reporting component, the same for kopf's own Events."""


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """Which WorkflowRun: enough to patch it, delete exactly it, and point an Event at it."""

    namespace: str
    name: str
    uid: str


class KubeError(Exception):
    """The API server refused a call or could not be reached (worth trying again later)."""


class NotFound(Exception):
    """The resource is gone (deleted, or replaced by another with the same name)."""


def load_configuration() -> k8s.Configuration:
    """In-cluster credentials when running in a pod, else the kubeconfig."""
    configuration = k8s.Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except ConfigException:
        k8s_config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return configuration


class KubeApi:
    """Status writes, Events and deletes of WorkflowRuns; counts the requests it makes."""

    def __init__(self, configuration: k8s.Configuration, *, instance: str) -> None:
        configuration.connection_pool_maxsize = THREADS
        api_client = k8s.ApiClient(configuration)
        self._threads = ThreadPoolExecutor(THREADS, thread_name_prefix="stepwise-kube")
        api_client.user_agent = COMPONENT
        self._custom = k8s.CustomObjectsApi(api_client)
        self._core = k8s.CoreV1Api(api_client)
        self.instance = instance
        self.requests: Counter[str] = Counter()
        """Requests made, by kind (``status``, ``event``, ``delete``)."""

    async def replace_status(self, ref: ObjectRef, status: dict[str, Any]) -> None:
        """Replace the whole status (a JSON patch ``add /status``: no stale key survives, as
        one could in a merge patch); the ``test`` op makes sure the resource is still the one
        we mean, not a new one under the same name. ``NotFound`` when it is gone."""
        self.requests["status"] += 1
        await self._call(
            ref,
            self._custom.patch_namespaced_custom_object_status,
            models.GROUP,
            models.VERSION,
            ref.namespace,
            models.PLURAL,
            ref.name,
            [
                {"op": "test", "path": "/metadata/uid", "value": ref.uid},
                {"op": "add", "path": "/status", "value": status},
            ],
            _content_type="application/json-patch+json",
        )

    async def delete(self, ref: ObjectRef) -> None:
        """Delete exactly this resource (a uid precondition); gone already is fine."""
        self.requests["delete"] += 1
        options = k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(uid=ref.uid))
        with contextlib.suppress(NotFound):
            await self._call(
                ref,
                self._custom.delete_namespaced_custom_object,
                models.GROUP,
                models.VERSION,
                ref.namespace,
                models.PLURAL,
                ref.name,
                body=options,
            )

    async def post_event(self, ref: ObjectRef, *, reason: str, message: str, warning: bool) -> None:
        """One core/v1 Event about ``ref``; failures are logged, never raised (an Event is
        a courtesy, not state)."""
        self.requests["event"] += 1
        now = datetime.now(UTC)
        event = k8s.CoreV1Event(
            metadata=k8s.V1ObjectMeta(generate_name=f"{ref.name}.", namespace=ref.namespace),
            involved_object=k8s.V1ObjectReference(
                api_version=models.API_VERSION,
                kind=models.KIND,
                name=ref.name,
                namespace=ref.namespace,
                uid=ref.uid,
            ),
            reason=reason,
            message=message[:1024],
            type="Warning" if warning else "Normal",
            source=k8s.V1EventSource(component=COMPONENT),
            reporting_component=COMPONENT,
            reporting_instance=self.instance,
            first_timestamp=now,
            last_timestamp=now,
            count=1,
        )
        try:
            await self._call(ref, self._core.create_namespaced_event, ref.namespace, event)
        except (NotFound, KubeError) as exc:
            log.warning("could not post event %s on %s/%s: %s", reason, *_where(ref), exc)

    async def _call(self, ref: ObjectRef, method: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
        try:
            call = functools.partial(method, *args, **kwargs)
            return await asyncio.get_running_loop().run_in_executor(self._threads, call)
        except ApiException as exc:
            if _gone(exc):
                raise NotFound(f"{models.KIND} {ref.namespace}/{ref.name} ({ref.uid})") from None
            raise KubeError(f"HTTP {exc.status} {exc.reason}: {exc.body}") from exc
        except (TransportError, OSError) as exc:
            raise KubeError(f"cannot reach the API server: {exc}") from exc


def _gone(exc: ApiException) -> bool:
    """404; or a uid that no longer matches: a failed precondition (409) or JSON-patch test
    (422) means the name now belongs to another resource."""
    body = str(exc.body or "")
    return exc.status == 404 or (exc.status in (409, 422) and ("uid" in body or "test" in body))


def _where(ref: ObjectRef) -> tuple[str, str]:
    return ref.namespace, ref.name
