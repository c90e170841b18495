"""The kopf handler of ``WorkflowSignal``: send the signal to its WorkflowRun's run, once.

* The resource's uid is the signal's idempotency key: a create handled twice (a retry, an
  operator restarted mid-way) stores one signal.
* The WorkflowRun (found by name, in the same namespace) becomes the signal's owner, so
  deleting the WorkflowRun deletes its signals.
* The status says what became of it: ``Delivered`` (kept by the run until a wait for its name
  receives it), ``Refused`` (the run had finished) or ``Pending`` (no WorkflowRun or run of
  that name yet, or the database is away: the handler tries again).
* The WorkflowRun gets an Event per signal (``SignalReceived``, or ``SignalRefused``), so
  ``kubectl describe wfr`` lists the signals it received.
"""

from __future__ import annotations

from typing import Any

import kopf
from pydantic import ValidationError

from stepwise.errors import DatabaseUnavailable, RunFinished, RunNotFound
from stepwise.operator import handlers, models
from stepwise.operator.kubeapi import ObjectRef
from stepwise.operator.signal_models import PLURAL, SignalPhase, WorkflowSignalSpec

RESOURCE = (models.GROUP, models.VERSION, PLURAL)
RETRY_DELAY = 2.0
"""Seconds before trying again a signal whose WorkflowRun or run is not there yet."""


def idempotency_key(uid: str) -> str:
    return f"workflowsignal/{uid}"


def owner_references(meta: kopf.Meta, run: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The signal's ownerReferences with its WorkflowRun among them; None when it is there."""
    current: list[dict[str, Any]] = list(meta.get("ownerReferences") or [])
    uid = run["metadata"]["uid"]
    if any(ref.get("uid") == uid for ref in current):
        return None
    owner = {
        "apiVersion": models.API_VERSION,
        "kind": models.KIND,
        "name": run["metadata"]["name"],
        "uid": uid,
    }
    return [*current, owner]


def _pending(patch: kopf.Patch, status: kopf.Status, message: str) -> kopf.TemporaryError:
    if status.get("message") != message:
        patch.status["phase"] = SignalPhase.PENDING.value
        patch.status["message"] = message
    return kopf.TemporaryError(message, delay=RETRY_DELAY)


@kopf.on.create(*RESOURCE, registry=handlers.registry)
async def send(
    body: kopf.Body,
    spec: kopf.Spec,
    status: kopf.Status,
    meta: kopf.Meta,
    name: str,
    namespace: str | None,
    uid: str,
    patch: kopf.Patch,
    memo: handlers.OperatorState,
    **_: Any,
) -> None:
    namespace = str(namespace)  # WorkflowSignals are namespaced
    try:
        parsed = WorkflowSignalSpec.model_validate(dict(spec))
    except ValidationError as exc:
        raise kopf.PermanentError(str(exc)) from exc
    kube = memo.mirror.kube
    found = await kube.list_runs(namespace, field_selector=f"metadata.name={parsed.run}")
    if not found:
        raise _pending(patch, status, f"no WorkflowRun {parsed.run!r} in namespace {namespace}")
    run = found[0]
    owners = owner_references(meta, run)
    if owners is not None:
        patch.metadata["ownerReferences"] = owners
    target = ObjectRef(namespace, parsed.run, run["metadata"]["uid"])
    try:
        sent = await memo.client.signal(
            target.uid, parsed.signal, parsed.payload, idempotency_key=idempotency_key(uid)
        )
    except RunNotFound as exc:
        message = f"the run of WorkflowRun {parsed.run!r} has not started"
        raise _pending(patch, status, message) from exc
    except DatabaseUnavailable as exc:
        raise _pending(patch, status, str(exc)) from exc
    except RunFinished as exc:
        patch.status.update(
            {"phase": SignalPhase.REFUSED.value, "runId": target.uid, "message": str(exc)}
        )
        kopf.warn(body, reason="SignalRefused", message=str(exc))
        await kube.post_event(
            target,
            reason="SignalRefused",
            message=f"signal {parsed.signal!r} from WorkflowSignal {name}: the run has finished",
            warning=True,
        )
        return
    patch.status.update(
        {
            "phase": SignalPhase.DELIVERED.value,
            "runId": target.uid,
            "sequence": sent.seq,
            "deliveredAt": sent.sent_at.isoformat(),
            "message": None,
        }
    )
    await kube.post_event(
        target,
        reason="SignalReceived",
        message=f"signal {parsed.signal!r} #{sent.seq} from WorkflowSignal {name}",
        warning=False,
    )
