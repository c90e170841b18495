"""Where kopf keeps its bookkeeping of a WorkflowRun, chosen so that a run that succeeds costs
kopf one request (its finalizer) and nothing else.

kopf's defaults PATCH every resource a second time once its create handler is done: to write
its diff base (the essence of the spec it handled) and a marker annotation. Neither is needed
here: the spec is immutable (a CEL rule), so there is never an update to detect, and whether a
resource's create was handled is already written in its status, ``status.runId``, by the
mirror. So the diff base is *read from the status* and never written; until the first status
write, every event counts as a create, and the create handler is idempotent (the run's id is
the resource's uid). Handler progress (retries of a failing create) still goes in annotations.
"""

from __future__ import annotations

import kopf

ANNOTATION_PREFIX = "operator.stepwise.dev"


class StatusRunDiffBase(kopf.AnnotationsDiffBaseStorage):
    """The diff base of a resource whose status names its run is the resource as it is now
    (nothing changed since the create was handled); there is none before."""

    def __init__(self) -> None:
        super().__init__(prefix=ANNOTATION_PREFIX, ignored_fields=["spec.input"], v1=False)

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        if not (body.get("status") or {}).get("runId"):
            return None
        return self.build(body=body)

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        """Nothing to store: the status the mirror writes says the create was handled."""


class QuietProgress(kopf.AnnotationsProgressStorage):
    """Handler progress in annotations, without the ``kopf-managed`` marker kopf adds to every
    resource it handles (a PATCH per resource, even when no progress is left to keep)."""

    def __init__(self) -> None:
        super().__init__(prefix=ANNOTATION_PREFIX, v1=False)

    def _store_marker(self, prefix: str, patch: kopf.Patch, body: kopf.Body) -> None:
        """No marker: it only helps other kopf operators tell our annotations apart."""
