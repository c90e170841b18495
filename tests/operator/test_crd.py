"""The CRD: generated from the models, committed copies that cannot drift, and an API server
that refuses bad specs at apply time with messages a user can act on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.controlplane import ControlPlane
from harness.errors import ToolError
from stepwise.operator import crd, models
from tests.operator.conftest import REPO


def _walk(node: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found.extend(_walk(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_walk(value))
    return found


def test_committed_copies_match_the_models() -> None:
    assert crd.write_all(check=True, root=REPO) == 0, "run `stepwise crds` and commit the result"
    cli = subprocess.run(
        [sys.executable, "-m", "stepwise", "crds", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    for resource in crd.RESOURCES:
        for target in resource.targets:
            assert (REPO / target).read_text(encoding="utf-8") == crd.render(resource)


def test_drift_and_missing_copies_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert crd.write_all(root=tmp_path) == 0
    first, second = (tmp_path / target for target in crd.TARGETS)
    assert first.read_text() == second.read_text() == crd.render()
    assert crd.write_all(check=True, root=tmp_path) == 0

    second.write_text(crd.render().replace("shortNames:\n    - wfr", "shortNames:\n    - run"))
    first.unlink()
    capsys.readouterr()
    assert crd.write_all(check=True, root=tmp_path) == 1
    err = capsys.readouterr().err
    assert f"{first} is missing: run `stepwise crds`" in err
    assert f"{second} is out of date: run `stepwise crds`" in err
    assert "-    - run\n+    - wfr" in err  # a diff says what changed
    assert not first.exists()  # --check writes nothing

    assert crd.write_all(root=tmp_path) == 0
    assert crd.write_all(check=True, root=tmp_path) == 0


def test_output_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert crd.write_all(output="-") == 0
    assert capsys.readouterr().out == "---\n".join(map(crd.render, crd.RESOURCES))


def test_shape_of_the_definition() -> None:
    definition = yaml.safe_load(crd.render())
    spec = definition["spec"]
    assert definition["metadata"]["name"] == "workflowruns.stepwise.dev"
    assert spec["names"]["shortNames"] == ["wfr"]
    assert spec["names"]["categories"] == ["stepwise"]
    assert spec["scope"] == "Namespaced"
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1"
    assert version["subresources"] == {"status": {}}
    columns = [
        (c["name"], c["jsonPath"], c.get("priority", 0))
        for c in version["additionalPrinterColumns"]
    ]
    assert columns == [
        ("Workflow", ".spec.workflow", 0),
        ("Phase", ".status.phase", 0),
        ("Steps", ".status.steps", 0),
        ("Age", ".metadata.creationTimestamp", 0),
        ("Duration", ".status.duration", 0),
        ("Message", ".status.message", 1),
    ]
    schema = version["schema"]["openAPIV3Schema"]
    run_spec = schema["properties"]["spec"]
    assert run_spec["required"] == ["workflow"]
    assert run_spec["x-kubernetes-validations"] == [
        {"rule": "self == oldSelf", "message": "spec is immutable; create a new WorkflowRun"},
        {"rule": "!(has(self.startAt) && has(self.delay))", "message": models.START_MESSAGE},
    ]
    assert run_spec["properties"]["input"]["x-kubernetes-preserve-unknown-fields"] is True
    assert run_spec["properties"]["ttlSecondsAfterFinished"]["minimum"] == 0
    # Structural: nothing Kubernetes would refuse or silently ignore.
    for node in _walk(schema):
        assert not {"$ref", "$defs", "anyOf", "allOf", "title", "default"} & node.keys()
        assert not isinstance(node.get("additionalProperties"), bool)


def test_shape_of_the_schedule_definition() -> None:
    definition = yaml.safe_load(crd.render(crd.SCHEDULE))
    spec = definition["spec"]
    assert definition["metadata"]["name"] == "workflowschedules.stepwise.dev"
    assert (spec["names"]["kind"], spec["names"]["shortNames"]) == ("WorkflowSchedule", ["wfs"])
    (version,) = spec["versions"]
    assert version["subresources"] == {"status": {}}
    shown = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert shown == ["Schedule", "Suspend", "Active", "Last Schedule", "Next", "Age"]
    schedule_spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert sorted(schedule_spec["required"]) == ["schedule", "workflow"]
    assert schedule_spec["properties"]["concurrencyPolicy"]["enum"] == [
        "Allow",
        "Forbid",
        "Replace",
    ]
    assert set(schedule_spec["properties"]) == {
        "schedule", "timeZone", "workflow", "input", "concurrencyPolicy",
        "startingDeadlineSeconds", "successfulRunsHistoryLimit", "failedRunsHistoryLimit",
        "suspend",
    }  # fmt: skip
    for node in _walk(definition):
        assert not {"$ref", "$defs", "anyOf", "allOf", "title"} & node.keys()
    defaults = {k: v.get("default") for k, v in schedule_spec["properties"].items()}
    assert defaults == {
        "schedule": None, "timeZone": "UTC", "workflow": None, "input": None,
        "concurrencyPolicy": "Allow", "startingDeadlineSeconds": None,
        "successfulRunsHistoryLimit": 3, "failedRunsHistoryLimit": 1, "suspend": False,
    }  # fmt: skip


# ---- against the API server -------------------------------------------------------------


def _refused(kube: ControlPlane, namespace: str, spec: Any) -> str:
    manifest = {
        "apiVersion": models.API_VERSION,
        "kind": models.KIND,
        "metadata": {"name": "refused"},
        "spec": spec,
    }
    if spec is None:
        del manifest["spec"]
    with pytest.raises(ToolError) as refusal:
        kube.apply(json.dumps(manifest), namespace=namespace)
    missing = kube.kubectl("get", "wfr", "refused", "-n", namespace, check=False)
    assert "NotFound" in missing.stderr
    return refusal.value.stderr


TTL = "spec.ttlSecondsAfterFinished"
BAD_SPECS = [
    (None, "spec: Required value"),
    ({"input": {"a": 1}}, "spec.workflow: Required value"),
    ({"workflow": 42}, "spec.workflow in body must be of type string"),
    ({"workflow": "bad name!"}, "spec.workflow in body should match"),
    ({"workflow": "w", "input": [1, 2]}, "spec.input in body must be of type object"),
    ({"workflow": "w", "ttlSecondsAfterFinished": "ten"}, f"{TTL} in body must be of type integer"),
    ({"workflow": "w", "ttlSecondsAfterFinished": -5}, f"{TTL} in body should be greater than"),
    (
        {"workflow": "w", "deadline": "10 minutes"},
        f'spec.deadline: Invalid value: "10 minutes": {models.DURATION_MESSAGE}',
    ),
    ({"workflow": "w", "retries": 3}, 'unknown field "spec.retries"'),
]


@pytest.mark.parametrize(("spec", "says"), BAD_SPECS)
def test_bad_specs_are_refused_at_apply_time(
    kube: ControlPlane, wfr_crd: str, kube_namespace: str, spec: Any, says: str
) -> None:
    assert says in _refused(kube, kube_namespace, spec)


def test_spec_is_immutable_after_create(
    kube: ControlPlane, wfr_crd: str, kube_namespace: str
) -> None:
    ns = kube_namespace
    manifest = {
        "apiVersion": models.API_VERSION,
        "kind": models.KIND,
        "metadata": {"name": "fixed"},
        "spec": {"workflow": "fan-out", "input": {"deep": {"list": [1, 2]}}},
    }
    kube.apply(json.dumps(manifest), namespace=ns)

    manifest["spec"]["input"]["deep"]["list"] = [1, 3]  # type: ignore[index]
    with pytest.raises(ToolError) as edited:
        kube.apply(json.dumps(manifest), namespace=ns)
    assert "spec: Invalid value: spec is immutable; create a new WorkflowRun" in edited.value.stderr
    with pytest.raises(ToolError) as patched:
        kube.kubectl(
            "patch", "wfr", "fixed", "-n", ns, "--type=merge", "-p", '{"spec":{"workflow":"other"}}'
        )
    assert "spec is immutable; create a new WorkflowRun" in patched.value.stderr
    # Metadata stays editable: labels are how users sort their runs.
    kube.kubectl("label", "wfr", "fixed", "-n", ns, "team=data")
    stored = kube.kubectl_json("get", "wfr", "fixed", "-n", ns)
    assert stored["spec"]["input"] == {"deep": {"list": [1, 2]}}
    assert stored["spec"]["workflow"] == "fan-out"


def test_table_columns_before_any_status(
    kube: ControlPlane, wfr_crd: str, kube_namespace: str
) -> None:
    ns = kube_namespace
    kube.apply(
        json.dumps({
            "apiVersion": models.API_VERSION, "kind": models.KIND,
            "metadata": {"name": "fresh"}, "spec": {"workflow": "fan-out"},
        }),
        namespace=ns,
    )  # fmt: skip
    header, row = kube.kubectl("get", "wfr", "-n", ns).stdout.splitlines()
    assert header.split() == ["NAME", "WORKFLOW", "PHASE", "STEPS", "AGE", "DURATION"]
    assert row.split()[:2] == ["fresh", "fan-out"]
    wide = kube.kubectl("get", "wfr", "-n", ns, "-o", "wide").stdout.splitlines()[0].split()
    assert wide == ["NAME", "WORKFLOW", "PHASE", "STEPS", "AGE", "DURATION", "MESSAGE"]
    # The short name and the category both find it.
    assert kube.kubectl("get", "stepwise", "-n", ns, "-o", "name").stdout.split() == [
        "workflowrun.stepwise.dev/fresh"
    ]
