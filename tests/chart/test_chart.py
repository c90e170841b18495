"""The Helm chart as code: lint clean for every scenario in ``ci/``, a schema that accepts every
scenario and refuses mistakes, a ``# --`` comment on every value, and the rendered objects carry
what the chart promises (one operator with Recreate, workers without API access and a grace
period matched to their shutdown, credentials only through Secrets, CRDs kept on uninstall).

Rendering needs only the helm binary (``scripts/k8s-tools.sh`` builds it); the last tests ask
the real API server to validate every rendered object (a server-side dry run) and install and
upgrade the chart there (the running of its Pods is the end-to-end test's part, tests/e2e).
"""

from __future__ import annotations

import base64
import copy
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from harness.controlplane import ControlPlane
from harness.tools import default_bin_dir, find_binaries, read_versions

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "stepwise"
SCENARIOS = sorted(path.name for path in (CHART / "ci").glob("*-values.yaml"))
FULLNAME = "demo-stepwise"


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``helm(*args)`` → CompletedProcess; helm's state lives in a temp dir, no cluster."""
    binary = find_binaries(default_bin_dir(), ["helm"])["helm"]
    home = tmp_path_factory.mktemp("helm")
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "KUBECONFIG": str(home / "no-cluster"),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(binary), *args], capture_output=True, text=True, env=env, timeout=120, check=False
        )
        if check and result.returncode != 0:
            pytest.fail(f"helm {' '.join(args)} failed:\n{result.stderr}")
        return result

    return run


def render(
    helm: Any, *values: str, scenario: str | None = None, namespace: str = "ns1"
) -> list[dict[str, Any]]:
    """``helm template`` of the chart as release "demo": the list of objects."""
    args = ["template", "demo", str(CHART), "-n", namespace, "--kube-version", kube_version()]
    if scenario:
        args += ["-f", str(CHART / "ci" / scenario)]
    for value in values:
        args += ["--set", value]
    return [doc for doc in yaml.safe_load_all(helm(*args).stdout) if doc]


def kube_version() -> str:
    return read_versions()["KUBE_VERSION"].removeprefix("v")


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    pytest.fail(f"no {kind} {name} among {[(o['kind'], o['metadata']['name']) for o in objects]}")


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = only
    return result


def env_of(deployment: dict[str, Any]) -> dict[str, Any]:
    return {var["name"]: var for var in container(deployment).get("env", [])}


def merged_values(scenario: str) -> dict[str, Any]:
    """values.yaml overlaid with a scenario, the way helm merges them (lists replace)."""

    def merge(base: Any, override: Any) -> Any:
        if isinstance(base, dict) and isinstance(override, dict):
            out = copy.deepcopy(base)
            for key, value in override.items():
                out[key] = merge(base.get(key), value)
            return out
        return copy.deepcopy(override)

    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    values: dict[str, Any] = merge(
        defaults, yaml.safe_load((CHART / "ci" / scenario).read_text()) or {}
    )
    return values


def schema_validator() -> jsonschema.Draft7Validator:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


# ---- lint, schema, documentation ---------------------------------------------------------------


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["kubeVersion"] == ">=1.28.0-0"
    assert (chart["version"], chart["appVersion"]) == ("0.2.0", "0.2.0")
    assert SCENARIOS, "charts/stepwise/ci/ holds no *-values.yaml scenario"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_lint_is_clean(helm: Any, scenario: str) -> None:
    result = helm("lint", "--strict", str(CHART), "-f", str(CHART / "ci" / scenario))
    assert "[WARNING]" not in result.stdout, result.stdout
    assert "[ERROR]" not in result.stdout, result.stdout


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_schema_accepts_scenario(scenario: str) -> None:
    errors = [e.message for e in schema_validator().iter_errors(merged_values(scenario))]
    assert errors == []


@pytest.mark.parametrize(
    ("override", "complaint"),
    [
        ({"worker": {"replica": 3}}, "'replica' was unexpected"),
        ({"worker": {"concurrency": 0}}, "less than the minimum"),
        ({"worker": {"healthPort": 70000}}, "greater than the maximum"),
        ({"worker": {"apps": "my.module"}}, "is not of type 'array'"),
        ({"database": {"url": "mysql://db/x"}}, "does not match"),
        ({"database": {"schema": "drop table;"}}, "does not match"),
        ({"operator": {"watchNamespaces": ["Team_A"]}}, "does not match"),
        ({"image": {"pullPolicy": "Sometimes"}}, "is not one of"),
        ({"crds": {"install": "yes"}}, "is not of type 'boolean'"),
    ],
)
def test_schema_refuses_mistakes(override: dict[str, Any], complaint: str) -> None:
    values = merged_values("default-values.yaml")
    for section, settings in override.items():
        values[section].update(settings)
    messages = [e.message for e in schema_validator().iter_errors(values)]
    assert any(complaint in message for message in messages), messages


def test_helm_enforces_the_schema(helm: Any) -> None:
    result = helm("lint", str(CHART), "--set", "worker.replica=3", check=False)
    assert result.returncode != 0
    assert "additional properties 'replica' not allowed" in result.stdout + result.stderr


def value_keys() -> list[tuple[int, str, bool]]:
    """Every key of values.yaml: (indent, dotted path, has a ``# --`` comment right above)."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    keys: list[tuple[int, str, bool]] = []
    path: list[tuple[int, str]] = []
    for number, line in enumerate(lines):
        match = re.match(r"^( *)([A-Za-z][\w-]*):", line)
        if not match:
            continue
        indent = len(match[1])
        while path and path[-1][0] >= indent:
            path.pop()
        path.append((indent, match[2]))
        above = number - 1
        while above >= 0 and lines[above].strip().startswith("#"):
            if lines[above].strip().startswith("# --"):
                break
            above -= 1
        documented = above >= 0 and lines[above].strip().startswith("# --")
        keys.append((indent, ".".join(name for _, name in path), documented))
    return keys


def test_every_value_is_documented() -> None:
    """Each key has a ``# --`` comment right above it, or is a section whose keys all do."""
    keys = value_keys()

    def covered(index: int) -> bool:
        indent, _, documented = keys[index]
        if documented:
            return True
        children = []
        for child in keys[index + 1 :]:
            if child[0] <= indent:
                break
            children.append(child)
        direct = [i for i, k in enumerate(keys) if k in children and k[0] == children[0][0]]
        return bool(children) and all(covered(i) for i in direct)

    missing = [keys[i][1] for i in range(len(keys)) if keys[i][0] == 0 and not covered(i)]
    assert missing == [], f"values without a `# --` comment: {missing}"


def test_chart_readme_lists_every_value() -> None:
    readme = (CHART / "README.md").read_text()
    listed = re.findall(r"^\| `([\w.-]+)` \|", readme, flags=re.MULTILINE)
    assert listed == [path for _, path, documented in value_keys() if documented]


# ---- rendered objects --------------------------------------------------------------------------


def test_default_install(helm: Any) -> None:
    objects = render(helm, scenario="default-values.yaml")
    operator = find(objects, "Deployment", f"{FULLNAME}-operator")
    worker = find(objects, "Deployment", f"{FULLNAME}-worker")

    assert operator["spec"]["replicas"] == 1
    assert operator["spec"]["strategy"] == {"type": "Recreate"}
    op = container(operator)
    assert op["args"] == ["operator", "--all-namespaces"]
    assert op["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-health"}
    assert op["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-health"}
    assert op["ports"] == [{"name": "http-health", "containerPort": 8080}]
    assert operator["spec"]["template"]["spec"]["serviceAccountName"] == f"{FULLNAME}-operator"

    w = container(worker)
    assert w["image"] == "stepwise:0.2.0"
    assert w["args"] == ["worker", "--concurrency", "10", "--lease", "30", "--shutdown-grace", "25"]
    assert w["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-health"}
    assert w["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-health"}
    pod = worker["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 25 + 5
    assert worker["spec"]["replicas"] == 2

    for deployment in (operator, worker):
        spec = deployment["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        sc = container(deployment)["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert container(deployment)["resources"]["requests"]
        env = env_of(deployment)
        assert env["STEPWISE_DATABASE_URL"]["valueFrom"] == {
            "secretKeyRef": {"name": f"{FULLNAME}-database", "key": "database-url"}
        }
        assert env["STEPWISE_SCHEMA"]["value"] == "stepwise"
        assert env["STEPWISE_HEALTH_PORT"]["value"] == str(
            container(deployment)["ports"][0]["containerPort"]
        )

    secret = find(objects, "Secret", f"{FULLNAME}-database")
    url = base64.b64decode(secret["data"]["database-url"]).decode()
    password = base64.b64decode(secret["data"]["password"]).decode()
    assert url == f"postgresql://stepwise:{password}@{FULLNAME}-postgresql:5432/stepwise"
    assert len(password) == 32
    postgres = find(objects, "StatefulSet", f"{FULLNAME}-postgresql")
    assert postgres["spec"]["replicas"] == 1
    (claim,) = postgres["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "8Gi"
    pg_env = {v["name"]: v for v in container(postgres)["env"]}
    assert pg_env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "password"
    assert find(objects, "Service", f"{FULLNAME}-postgresql")["spec"]["clusterIP"] == "None"

    pdb = find(objects, "PodDisruptionBudget", f"{FULLNAME}-worker")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == worker["spec"]["selector"]["matchLabels"]
    for component, port in (("operator", 8080), ("worker", 8081)):
        service = find(objects, "Service", f"{FULLNAME}-{component}-metrics")
        assert service["spec"]["ports"] == [
            {"name": "http-metrics", "port": port, "targetPort": "http-health"}
        ]
        assert service["spec"]["selector"]["app.kubernetes.io/component"] == component
    assert not [o for o in objects if o["kind"] == "ServiceMonitor"]


def test_credentials_only_through_secrets(helm: Any) -> None:
    for scenario in SCENARIOS:
        for obj in render(helm, scenario=scenario):
            if obj["kind"] in ("Secret", "CustomResourceDefinition"):
                continue
            text = json.dumps(obj)
            assert "postgresql://" not in text, (scenario, obj["kind"])
            assert "s3cret" not in text, (scenario, obj["kind"])


def test_workers_get_no_api_access(helm: Any) -> None:
    objects = render(helm, scenario="default-values.yaml")
    account = find(objects, "ServiceAccount", f"{FULLNAME}-worker")
    assert account["automountServiceAccountToken"] is False
    worker = find(objects, "Deployment", f"{FULLNAME}-worker")
    assert worker["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    assert worker["spec"]["template"]["spec"]["serviceAccountName"] == f"{FULLNAME}-worker"
    bound = [
        subject["name"]
        for obj in objects
        if obj["kind"] in ("RoleBinding", "ClusterRoleBinding")
        for subject in obj.get("subjects", [])
    ]
    assert f"{FULLNAME}-worker" not in bound


def test_production_scenario(helm: Any) -> None:
    objects = render(helm, scenario="existing-secret-values.yaml")
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert not [k for k in kinds if k[0] in ("Secret", "StatefulSet")], kinds
    operator = find(objects, "Deployment", f"{FULLNAME}-operator")
    worker = find(objects, "Deployment", f"{FULLNAME}-worker")
    assert container(operator)["args"] == [
        "operator", "--namespace", "team-a", "--namespace", "team-b",
    ]  # fmt: skip
    assert container(operator)["image"] == "registry.example.com/platform/stepwise:0.1.0"
    w = container(worker)
    assert w["image"] == "registry.example.com/team-a/workflows:1.4.2"
    assert w["args"] == [
        "worker", "--app", "acme.workflows.billing", "--app", "acme.workflows.onboarding",
        "--concurrency", "25", "--lease", "15", "--shutdown-grace", "55",
    ]  # fmt: skip
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 60
    assert worker["spec"]["replicas"] == 3
    for deployment in (operator, worker):
        env = env_of(deployment)
        assert env["STEPWISE_DATABASE_URL"]["valueFrom"] == {
            "secretKeyRef": {"name": "stepwise-db", "key": "url"}
        }
        assert env["STEPWISE_SCHEMA"]["value"] == "workflows"
        pull = deployment["spec"]["template"]["spec"]["imagePullSecrets"]
        assert pull == [{"name": "registry-credentials"}]
    assert env_of(worker)["BILLING_API_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "billing"


def test_database_url_goes_into_a_secret(helm: Any) -> None:
    objects = render(helm, scenario="database-url-values.yaml")
    secret = find(objects, "Secret", f"{FULLNAME}-database")
    assert set(secret["data"]) == {"database-url"}
    assert (
        base64.b64decode(secret["data"]["database-url"]).decode()
        == "postgresql://stepwise:s3cret@db.example.internal:5432/stepwise"
    )
    assert not [o for o in objects if o["kind"] in ("StatefulSet", "PodDisruptionBudget")]
    assert (
        "/app/workflows/orders.py"
        in container(find(objects, "Deployment", f"{FULLNAME}-worker"))["args"]
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["database.url=postgresql://db/x"], "set postgresql.enabled=false to use database.url"),
        (["database.existingSecret=db"], "set postgresql.enabled=false to use database.url"),
        (["postgresql.enabled=false"], "no database: set database.existingSecret"),
    ],
)
def test_database_settings_must_be_unambiguous(helm: Any, values: list[str], message: str) -> None:
    args = ["template", "demo", str(CHART)]
    for value in values:
        args += ["--set", value]
    result = helm(*args, check=False)
    assert result.returncode != 0
    assert message in result.stderr


def test_crds_are_rendered_from_the_generated_files_and_kept(helm: Any) -> None:
    sources = sorted((CHART / "files" / "crds").glob("*.yaml"))
    assert sources, "charts/stepwise/files/crds/ is empty: `stepwise crds` writes it"
    rendered = {
        o["metadata"]["name"]: o
        for o in render(helm, scenario="default-values.yaml")
        if o["kind"] == "CustomResourceDefinition"
    }
    for source in sources:
        crd = yaml.safe_load(source.read_text())
        name = crd["metadata"]["name"]
        assert rendered[name]["spec"] == crd["spec"]
        assert rendered[name]["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert rendered[name]["metadata"]["labels"]["app.kubernetes.io/instance"] == "demo"
    assert len(rendered) == len(sources)
    no_crds = render(helm, scenario="no-crds-values.yaml")
    assert not [o for o in no_crds if o["kind"] == "CustomResourceDefinition"]


def test_service_monitors(helm: Any) -> None:
    objects = render(helm, scenario="service-monitor-values.yaml")
    monitors = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ServiceMonitor"}
    assert set(monitors) == {f"{FULLNAME}-operator", f"{FULLNAME}-worker"}
    for component in ("operator", "worker"):
        monitor = monitors[f"{FULLNAME}-{component}"]
        service = find(objects, "Service", f"{FULLNAME}-{component}-metrics")
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector.items() <= service["metadata"]["labels"].items()
        assert monitor["spec"]["endpoints"] == [
            {"port": "http-metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
        ]
        assert monitor["metadata"]["labels"]["release"] == "prometheus"


def test_helm_test_hook_checks_the_database(helm: Any) -> None:
    pod = find(render(helm, scenario="default-values.yaml"), "Pod", f"{FULLNAME}-run-smoke")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["spec"]["containers"][0]["args"] == ["runs", "list", "--limit", "1"]


@pytest.mark.kube
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_api_server_accepts_rendered_objects(
    helm: Any, kube: ControlPlane, kube_namespace: str, scenario: str
) -> None:
    """A server-side dry run: every object passes the real API server's validation."""
    # The operator's Roles go to the namespaces it watches: make that this test's namespace.
    watched = merged_values(scenario)["operator"]["watchNamespaces"]
    values = [f"operator.watchNamespaces={{{kube_namespace}}}"] if watched else []
    objects = [
        obj for obj in render(helm, *values, scenario=scenario, namespace=kube_namespace)
        # Not served here: the Prometheus Operator's CRD is not installed.
        if obj["kind"] != "ServiceMonitor"
    ]  # fmt: skip
    # Pods are admitted only with their ServiceAccount in place: create those for real.
    accounts = [obj for obj in objects if obj["kind"] == "ServiceAccount"]
    kube.apply(
        json.dumps({"apiVersion": "v1", "kind": "List", "items": accounts}),
        namespace=kube_namespace,
    )
    result = kube.kubectl(
        "apply", "--dry-run=server", "-n", kube_namespace, "-f", "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}),
    )  # fmt: skip
    assert result.stdout.count("(server dry run)") == len(objects), result.stdout


@pytest.mark.kube
def test_bundled_database_password_survives_upgrade(
    kube: ControlPlane, kube_namespace: str
) -> None:
    """The random password is made once: an upgrade reads it back (lookup) instead of rolling
    a new one under a database that was initialised with the old."""
    ns = kube_namespace
    secret = f"{FULLNAME}-database"

    def password() -> str:
        data = kube.kubectl_json("get", "secret", secret, "-n", ns)["data"]
        return base64.b64decode(data["password"]).decode()

    kube.helm("install", "demo", str(CHART), "-n", ns, "--set", "crds.install=false")
    first = password()
    kube.helm(
        "upgrade", "demo", str(CHART), "-n", ns, "--reuse-values", "--set", "worker.replicas=3"
    )
    assert password() == first
    kube.helm("uninstall", "demo", "-n", ns)
