"""The WorkflowRun of a child run: a run that a step of another run started
(``ctx.step.run_workflow``), shown to Kubernetes as a resource of its own.

It is owned by its parent's WorkflowRun (an ownerReference), so deleting the parent deletes it
through Kubernetes' garbage collector, and it carries the parent's name as a label, so
``kubectl get wfr -l stepwise.dev/parent=NAME`` lists a run's children. Its run exists already:
the annotation ``stepwise.dev/run-id`` tells the operator to mirror that run instead of starting
one. Its spec repeats the child's workflow (and its input when that is a JSON object, as the
spec's schema asks), for ``kubectl get`` and ``describe``.
"""

from __future__ import annotations

import re
from typing import Any

from stepwise.client.client import Run
from stepwise.operator import models
from stepwise.operator.kubeapi import ObjectRef

_NAME_ROOM = 253 - 9
"""A child's name is its parent's (cut to fit), a dash and the first 8 characters of its id."""
_LABEL = re.compile(r"[^A-Za-z0-9]+$")


def name(parent: ObjectRef, run_id: str) -> str:
    return f"{parent.name[:_NAME_ROOM]}-{run_id[:8]}"


def label_value(parent_name: str) -> str:
    """The parent's name as a label value: at most 63 characters, ending alphanumeric."""
    return _LABEL.sub("", parent_name[:63])


def resource(parent: ObjectRef, run: Run) -> dict[str, Any]:
    """The manifest of the WorkflowRun of child run ``run`` of ``parent``."""
    spec: dict[str, Any] = {"workflow": run.workflow}
    if isinstance(run.input, dict):
        spec["input"] = run.input
    if run.version is not None:
        spec["version"] = run.version
    return {
        "apiVersion": models.API_VERSION,
        "kind": models.KIND,
        "metadata": {
            "name": name(parent, run.id),
            "namespace": parent.namespace,
            "labels": {models.PARENT_LABEL: label_value(parent.name)},
            "annotations": {models.RUN_ID_ANNOTATION: run.id},
            "ownerReferences": [
                {
                    "apiVersion": models.API_VERSION,
                    "kind": models.KIND,
                    "name": parent.name,
                    "uid": parent.uid,
                    "controller": True,
                }
            ],
        },
        "spec": spec,
    }
