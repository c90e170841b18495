"""The three Kubernetes calls the operator makes outside kopf's handlers: write a status,
post an Event, delete a finished resource.

kopf owns the watch and the handler bookkeeping; the mirror writes status on its own clock
(when Postgres says a run changed), outside kopf's handler context, so it needs its own client:
``kubernetes_asyncio``, on the operator's one event loop beside kopf's (both are aiohttp), with
no thread. kopf logs in through the same library (``kopf.login_via_async_client``), so both
take their credentials alike: the pod's ServiceAccount in a cluster, else the kubeconfig
(``$KUBECONFIG``).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import aiohttp
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config.config_exception import ConfigException

from stepwise.operator import models

log = logging.getLogger("stepwise.operator")

T = TypeVar("T")

REQUEST_TIMEOUT = 15.0
CONNECTIONS = 32
"""Kubernetes calls in flight at once (each holds a pooled connection); more wait their turn."""
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


async def load_configuration() -> k8s.Configuration:
    """In-cluster credentials when running in a pod, else the kubeconfig."""
    configuration = k8s.Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except ConfigException:
        await k8s_config.load_kube_config(client_configuration=configuration)
    return configuration


@contextlib.asynccontextmanager
async def connect(*, instance: str) -> AsyncIterator[KubeApi]:
    """A ``KubeApi`` with the operator's credentials, its connections closed on the way out."""
    configuration = await load_configuration()
    configuration.connection_pool_maxsize = CONNECTIONS
    async with k8s.ApiClient(configuration) as api_client:
        api_client.user_agent = COMPONENT
        yield KubeApi(api_client, instance=instance)


class KubeApi:
    """Status writes, Events and deletes of WorkflowRuns; counts the requests it makes."""

    def __init__(self, api_client: k8s.ApiClient, *, instance: str) -> None:
        self._custom = k8s.CustomObjectsApi(api_client)
        self._core = k8s.CoreV1Api(api_client)
        self.instance = instance
        self.requests: Counter[str] = Counter()
        """Requests made, by kind (``status``, ``event``, ``delete``, ``create``, ``list``)."""

    async def replace_status(self, ref: ObjectRef, status: dict[str, Any]) -> str:
        """Replace the whole status (a JSON patch ``add /status``, sent as such because the
        body is a list: no stale key survives, as one could in a merge patch); the ``test`` op
        makes sure the resource is still the one we mean, not a new one under the same name.
        The resource's new ``resourceVersion``; ``NotFound`` when it is gone."""
        self.requests["status"] += 1
        written: dict[str, Any] = await self._call(
            ref,
            self._custom.patch_namespaced_custom_object_status(
                models.GROUP,
                models.VERSION,
                ref.namespace,
                models.PLURAL,
                ref.name,
                [
                    {"op": "test", "path": "/metadata/uid", "value": ref.uid},
                    {"op": "add", "path": "/status", "value": status},
                ],
                _request_timeout=REQUEST_TIMEOUT,
            ),
        )
        return str(written["metadata"]["resourceVersion"])

    async def delete(self, ref: ObjectRef) -> None:
        """Delete exactly this resource (a uid precondition); gone already is fine."""
        self.requests["delete"] += 1
        options = k8s.V1DeleteOptions(preconditions=k8s.V1Preconditions(uid=ref.uid))
        with contextlib.suppress(NotFound):
            await self._call(
                ref,
                self._custom.delete_namespaced_custom_object(
                    models.GROUP,
                    models.VERSION,
                    ref.namespace,
                    models.PLURAL,
                    ref.name,
                    body=options,
                    _request_timeout=REQUEST_TIMEOUT,
                ),
            )

    async def create(self, namespace: str, body: dict[str, Any]) -> bool:
        """Create a WorkflowRun; False when one of that name exists already (so a schedule
        that names its runs after their ticks creates each one once, restarts included)."""
        self.requests["create"] += 1
        request = self._custom.create_namespaced_custom_object(
            models.GROUP, models.VERSION, namespace, models.PLURAL, body,
            _request_timeout=REQUEST_TIMEOUT,
        )  # fmt: skip
        try:
            await _request(request)
        except KubeError as exc:
            if isinstance(exc.__cause__, ApiException) and exc.__cause__.status == 409:
                return False
            raise
        return True

    async def list_runs(
        self, namespace: str, label_selector: str = "", *, field_selector: str = ""
    ) -> list[dict[str, Any]]:
        """The WorkflowRuns of ``namespace`` that carry the labels of ``label_selector`` and
        match ``field_selector`` (``metadata.name=NAME`` finds one by name: the operator may
        list WorkflowRuns, so it needs no ``get`` verb)."""
        self.requests["list"] += 1
        answer = await _request(
            self._custom.list_namespaced_custom_object(
                models.GROUP, models.VERSION, namespace, models.PLURAL,
                label_selector=label_selector, field_selector=field_selector,
                _request_timeout=REQUEST_TIMEOUT,
            )
        )  # fmt: skip
        items: list[dict[str, Any]] = answer["items"]
        return items

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
            await self._call(
                ref,
                self._core.create_namespaced_event(
                    ref.namespace, event, _request_timeout=REQUEST_TIMEOUT
                ),
            )
        except (NotFound, KubeError) as exc:
            log.warning("could not post event %s on %s/%s: %s", reason, *_where(ref), exc)

    async def _call(self, ref: ObjectRef, request: Awaitable[T]) -> T:
        """Await one request; its failure as ``NotFound`` or ``KubeError``."""
        try:
            return await _request(request)
        except KubeError as exc:
            cause = exc.__cause__
            if isinstance(cause, ApiException) and _gone(cause):
                raise NotFound(f"{models.KIND} {ref.namespace}/{ref.name} ({ref.uid})") from None
            raise


async def _request(request: Awaitable[T]) -> T:
    """Await one request; its failure as ``KubeError`` (the ``ApiException`` as its cause)."""
    try:
        return await request
    except ApiException as exc:
        raise KubeError(f"HTTP {exc.status} {exc.reason}: {_text(exc)}") from exc
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise KubeError(f"cannot reach the API server: {exc!r}") from exc


def _gone(exc: ApiException) -> bool:
    """404; or the name now belongs to another resource: the delete's uid precondition failed
    (409), or the status patch's ``test`` of the uid did (422 with no details: a status the
    schema refuses is a 422 that names its causes)."""
    if exc.status == 404:
        return True
    try:
        answer = json.loads(_text(exc))
    except ValueError:
        return False
    if exc.status == 409:  # "the UID in the precondition (…) does not match the UID in record"
        return "uid in the precondition" in str(answer.get("message")).lower()
    return exc.status == 422 and not answer.get("details")


def _text(exc: ApiException) -> str:
    body = exc.body or b""
    return body.decode(errors="replace") if isinstance(body, bytes) else str(body)


def _where(ref: ObjectRef) -> tuple[str, str]:
    return ref.namespace, ref.name
