"""Every WorkflowRun under ``examples/k8s/`` runs to Succeeded, served by a worker that loads
the example workflows the way the examples' image does (every ``examples/*.py``), with the
same result ``stepwise run`` gives for that workflow and input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from harness.workers import Procs
from stepwise.operator.models import WorkflowRunSpec
from tests.operator.conftest import REPO, OperatorHarness
from tests.test_examples import CASES

EXAMPLES = REPO / "examples"
MANIFESTS = sorted((EXAMPLES / "k8s").glob("*.yaml"))


def expected_output(workflow: str, payload: object) -> object:
    """What ``tests/test_examples.py`` expects ``stepwise run`` to print for this input."""
    for _, name, given, output in CASES:
        if name == workflow and (json.loads(given) if given else None) == payload:
            return output
    raise AssertionError(f"no example case runs {workflow} with {payload!r}")


@pytest.mark.kube
@pytest.mark.postgres
def test_example_workflowruns_succeed(
    operator: OperatorHarness, procs: Procs, postgres_url: str
) -> None:
    assert MANIFESTS, "examples/k8s/ is empty"
    apps = sorted(EXAMPLES.glob("*.py"))
    extra = [arg for app in apps[1:] for arg in ("--app", str(app))]
    procs.worker(apps[0], postgres_url, lease=15.0, args=extra, ready=True)
    operator.start()

    wanted: dict[str, object] = {}
    for manifest in MANIFESTS:
        text = manifest.read_text(encoding="utf-8")
        resource = yaml.safe_load(text)
        spec = resource["spec"]
        wanted[resource["metadata"]["name"]] = expected_output(spec["workflow"], spec.get("input"))
        operator.kube.apply(text, namespace=operator.namespace)

    for name, output in wanted.items():
        done = operator.wait_phase(name, "Succeeded")
        assert done["output"] == output, name


def test_manifests_are_valid_specs() -> None:
    for manifest in MANIFESTS:
        resource = yaml.safe_load(Path(manifest).read_text(encoding="utf-8"))
        assert resource["apiVersion"] == "stepwise.dev/v1alpha1"
        assert resource["kind"] == "WorkflowRun"
        WorkflowRunSpec.model_validate(resource["spec"])
