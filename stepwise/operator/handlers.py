"""The kopf handlers of ``WorkflowRun``: thin, each one event → one client call.

* create → start the run under the resource's uid (``run_id`` and idempotency key), so a
  create delivered twice, or replayed after an operator restart, never makes a second run
  (kopf counts a create as handled once the status names the run: ``persistence``);
* delete (behind kopf's finalizer) → cancel the run if it is unfinished, then let go;
* every watch event → tell the mirror the resource exists (it writes the status);
* login → ``kubernetes_asyncio``'s credentials (in-cluster, else the kubeconfig), as the
  mirror's client takes them.

They live in their own registry, not kopf's global one, and run only under ``main.run``.
Handlers return None: kopf would store a returned value in the status, which is ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import kopf

from stepwise.backends.base import RunStatus
from stepwise.client.client import Client
from stepwise.core import tracing
from stepwise.errors import DatabaseUnavailable
from stepwise.operator import models, schedule_models
from stepwise.operator.kubeapi import ObjectRef
from stepwise.operator.mirror import Mirror

registry = kopf.OperatorRegistry()
RESOURCE = (models.GROUP, models.VERSION, models.PLURAL)
DATABASE_RETRY_DELAY = 5.0


@dataclass
class OperatorState:
    """kopf's ``memo``: what every handler shares (kopf copies it shallowly per resource)."""

    client: Client
    mirror: Mirror


def idempotency_key(uid: str) -> str:
    return f"workflowrun/{uid}"


def scheduled_at(meta: kopf.Meta) -> datetime | None:
    """The tick of a WorkflowRun that a WorkflowSchedule created (its annotation)."""
    text = meta.annotations.get(schedule_models.SCHEDULED_AT_ANNOTATION)
    return None if text is None else datetime.fromisoformat(text)


def ref_of(body: kopf.Body) -> ObjectRef:
    return ObjectRef(str(body.metadata.namespace), str(body.metadata.name), str(body.metadata.uid))


@kopf.on.login(registry=registry)
async def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """The same credentials as the mirror's client: the pod's ServiceAccount, else the
    kubeconfig."""
    return await kopf.login_via_async_client(**kwargs)


@kopf.on.event(*RESOURCE, registry=registry)
async def observe(
    event: kopf.RawEvent, body: kopf.Body, uid: str, memo: OperatorState, **_: Any
) -> None:
    if event["type"] == "DELETED":
        memo.mirror.forget(uid)
    else:
        memo.mirror.observe(body)


@kopf.on.create(*RESOURCE, registry=registry)
async def start_run(
    body: kopf.Body, spec: kopf.Spec, meta: kopf.Meta, uid: str, memo: OperatorState, **_: Any
) -> None:
    if models.RUN_ID_ANNOTATION in meta.annotations:
        memo.mirror.mark(uid)  # a child run's resource: its parent's step started the run
        return
    parsed = models.WorkflowRunSpec.model_validate(dict(spec))
    created = datetime.fromisoformat(str(meta["creationTimestamp"]))
    client = memo.client
    try:
        if await client.find(uid) is None:  # else started already (a create seen again)
            # The run's trace continues the annotation's, else it starts at the client's span.
            with tracing.remote_parent(meta.annotations.get(models.TRACEPARENT_ANNOTATION)):
                await client.start(
                    parsed.workflow,
                    parsed.input,
                    run_id=uid,
                    idempotency_key=idempotency_key(uid),
                    deadline=parsed.deadline_after(created),
                    start_at=parsed.start_after(created),
                    version=parsed.version,
                    scheduled_at=scheduled_at(meta),
                )
    except DatabaseUnavailable as exc:
        raise kopf.TemporaryError(str(exc), delay=DATABASE_RETRY_DELAY) from exc
    # No Event: the status says the run started. Its first write not at once: a worker
    # usually finishes a short run within moments, and the first status then already says
    # Succeeded (one status write for the whole run).
    memo.mirror.mark(uid, delay=memo.mirror.min_interval)


@kopf.on.delete(*RESOURCE, registry=registry)
async def cancel_run(
    body: kopf.Body, meta: kopf.Meta, uid: str, memo: OperatorState, **_: Any
) -> None:
    """Cancel the run; its children's runs with it (their WorkflowRuns, which this one owns,
    are then deleted by Kubernetes' garbage collector)."""
    client = memo.client
    run_id = meta.annotations.get(models.RUN_ID_ANNOTATION, uid)
    try:
        found = await client.find(run_id)
        if found is None or found.finished:
            return
        run = await client.cancel(run_id)
    except DatabaseUnavailable as exc:
        raise kopf.TemporaryError(str(exc), delay=DATABASE_RETRY_DELAY) from exc
    if run.status is RunStatus.CANCELED:
        memo.mirror.announce(
            ref_of(body),
            reason="Canceled",
            message=f"canceled run {run_id}: the WorkflowRun was deleted",
            warning=False,
        )
