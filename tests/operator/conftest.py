"""Fixtures of the operator's end-to-end tests: the CRD, the operator as a real process
acting through a ServiceAccount bound to exactly the chart's RBAC, workers as real processes,
and a window on the database.

``operator`` (an ``OperatorHarness``) serves the test's namespace only (the chart's
namespaced RBAC); ``cluster_operator`` serves every namespace (the chart's default,
cluster-wide RBAC). Either one deletes the test's WorkflowRuns while it still runs, so
nothing is left with a finalizer nobody removes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from harness.controlplane import ControlPlane
from harness.processes import free_port, wait_until
from harness.workers import Proc, Procs
from stepwise.backends.base import StepRecord
from stepwise.client.client import Client, Run
from stepwise.operator import crd, models

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "stepwise"
RBAC_TEMPLATE = "templates/operator/rbac.yaml"
WORKFLOWS = Path(__file__).with_name("workflows.py")
CRD_NAME = f"{models.PLURAL}.{models.GROUP}"

T = TypeVar("T")


@pytest.fixture(scope="session")
def wfr_crd(kube: ControlPlane) -> str:
    """The committed CRDs (WorkflowRun's and the other resources the operator serves),
    applied once per session (other tests may have installed them): the operator and its
    RBAC checks need every one of them served."""
    for resource in crd.RESOURCES:
        name = f"{resource.plural}.{models.GROUP}"
        kube.kubectl("apply", "-f", str(REPO / resource.targets[0]))
        kube.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
        # A new kubectl process may not see the new API group for a moment.
        wait_until(
            lambda plural=resource.plural: (
                kube.kubectl("get", plural, "-A", check=False).returncode == 0
            ),
            timeout=30,
            what=f"{resource.kind}s to be served",
        )
    return CRD_NAME


class Database:
    """Synchronous reads of the test's database, for assertions."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _do(self, action: Callable[[Client], Awaitable[T]]) -> T:
        async def main() -> T:
            async with Client.connect(self.url) as client:
                return await action(client)

        return asyncio.run(main())

    def runs(self, workflow: str | None = None) -> list[Run]:
        return self._do(lambda c: c.list(workflow=workflow, limit=10_000))

    def run(self, run_id: str) -> Run:
        return self._do(lambda c: c.get(run_id))

    def steps(self, run_id: str) -> list[StepRecord]:
        return self._do(lambda c: c.backend.list_steps(run_id))


@pytest.fixture
def database(postgres_url: str) -> Database:
    return Database(postgres_url)


@dataclass
class OperatorHarness:
    kube: ControlPlane
    procs: Procs
    namespace: str
    database_url: str
    all_namespaces: bool
    log_level: str = "INFO"
    extra_args: list[str] = field(default_factory=list)
    """More flags of ``stepwise operator``, for the next ``start``."""
    kubeconfig: Path = field(init=False)
    service_account: str = field(init=False)
    rbac: str = field(init=False)
    health_port: int = field(init=False, default=0)
    proc: Proc | None = field(init=False, default=None)
    runs: int = field(init=False, default=0)

    def install_rbac(self) -> None:
        """The chart's RBAC for a release in this namespace, and a kubeconfig acting as the
        ServiceAccount it binds (a token from the TokenRequest API)."""
        args = ["template", self.namespace, str(CHART), "--namespace", self.namespace]
        args += ["--show-only", RBAC_TEMPLATE]
        if not self.all_namespaces:
            args += ["--set", f"operator.watchNamespaces={{{self.namespace}}}"]
        self.rbac = self.kube.helm(*args).stdout
        objects = [o for o in yaml.safe_load_all(self.rbac) if o]
        binding = next(o for o in objects if o["kind"] == "ClusterRoleBinding")
        self.service_account = binding["subjects"][0]["name"]
        self.kube.apply(self.rbac)
        self.kubeconfig = self.kube.service_account_kubeconfig(self.namespace, self.service_account)

    @property
    def user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    # ---- the process ----

    def start(self) -> Proc:
        """``python -m stepwise operator`` as the ServiceAccount; returns once it is healthy."""
        self.health_port = free_port()
        scope = ["--all-namespaces"] if self.all_namespaces else ["--namespace", self.namespace]
        argv = [
            sys.executable, "-m", "stepwise", "--log-level", self.log_level, "operator",
            *scope, "--database-url", self.database_url,
            "--health-port", str(self.health_port), "--health-host", "127.0.0.1",
            *self.extra_args,
        ]  # fmt: skip
        self.runs += 1
        self.proc = self.procs.spawn(
            argv, name=f"operator-{self.runs}", env={"KUBECONFIG": str(self.kubeconfig)}
        )
        proc = self.proc
        wait_until(
            lambda: self.health() is not None or _exited(proc),
            timeout=60,
            what="the operator's /healthz",
        )
        if not proc.alive:
            pytest.fail(f"the operator exited while starting\n{proc.tail()}")
        return proc

    def health(self) -> dict[str, Any] | None:
        url = f"http://127.0.0.1:{self.health_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                health: dict[str, Any] = json.loads(answer.read())
                return health
        except (OSError, urllib.error.URLError, ValueError):
            return None

    def tracked(self) -> int | None:
        """WorkflowRuns the operator's mirror keeps (None while it does not answer)."""
        health = self.health()
        return None if health is None else int(health["mirror"]["tracked"])

    def wait_released(self, timeout: float = 60) -> None:
        """Until the mirror keeps no WorkflowRun (every one finished and let go)."""
        wait_until(
            lambda: self.tracked() == 0,
            timeout=timeout,
            what=f"the operator to let go of every finished WorkflowRun ({self.tracked()} kept)",
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def log(self) -> str:
        return "".join(proc.log() for proc in self.procs.procs if proc.name.startswith("operator"))

    # ---- the resources ----

    def kubectl(self, *args: str, check: bool = True) -> str:
        result = self.kube.kubectl(*args, "-n", self.namespace, check=check)
        return result.stdout if check else result.stdout + result.stderr

    def apply(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        manifest = {
            "apiVersion": models.API_VERSION,
            "kind": models.KIND,
            "metadata": {"name": name},
            "spec": spec,
        }
        self.kube.apply(json.dumps(manifest), namespace=self.namespace)
        return self.get(name)

    def get(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.kube.kubectl_json("get", "wfr", name, "-n", self.namespace)
        return found

    def status(self, name: str) -> dict[str, Any]:
        status: dict[str, Any] = self.get(name).get("status") or {}
        return status

    def wait_status(
        self, name: str, check: Callable[[dict[str, Any]], Any], what: str, timeout: float = 60
    ) -> dict[str, Any]:
        """Poll the resource's status until ``check`` holds; the status then."""
        holds: dict[str, Any] = wait_until(
            lambda: (lambda s: s if check(s) else None)(self.status(name)),
            timeout=timeout,
            interval=0.1,
            what=f"{self.namespace}/{name}: {what}",
        )
        return holds

    def wait_phase(self, name: str, phase: str, timeout: float = 60) -> dict[str, Any]:
        return self.wait_status(name, lambda s: s.get("phase") == phase, f"phase {phase}", timeout)

    def table(self, *args: str) -> list[list[str]]:
        """``kubectl get wfr`` as rows of cells (header first)."""
        return [line.split() for line in self.kubectl("get", "wfr", *args).splitlines()]

    def events(self, name: str) -> list[dict[str, Any]]:
        answer = self.kube.kubectl_json(
            "get", "events", "-n", self.namespace, "--field-selector",
            f"involvedObject.name={name},involvedObject.kind={models.KIND}",
        )  # fmt: skip
        items: list[dict[str, Any]] = answer["items"]
        return items

    def reasons(self, name: str) -> list[str]:
        return sorted(event["reason"] for event in self.events(name))

    # ---- teardown ----

    def clean_up(self) -> None:
        """Delete the test's WorkflowRuns while the operator runs (it cancels and releases
        them); without it, drop their finalizers. Then remove the cluster-wide RBAC."""
        if self.proc is not None and self.proc.alive:
            # --wait=false, then one poll: kubectl would wait for each object in turn.
            self.kubectl("delete", "wfr", "--all", "--wait=false", check=False)
            with contextlib.suppress(TimeoutError):
                wait_until(
                    lambda: (
                        "workflowrun" not in self.kubectl("get", "wfr", "-o", "name", check=False)
                    ),
                    timeout=60,
                    what="the operator to release the test's WorkflowRuns",
                )
        for name in self.kubectl("get", "wfr", "-o", "name", check=False).split():
            if name.startswith("workflowrun"):
                self.kubectl(
                    "patch", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}',
                    check=False,
                )  # fmt: skip
        if self.proc is not None and self.proc.alive:
            with contextlib.suppress(BaseException):
                self.stop()
        with contextlib.suppress(Exception):
            self.kube.kubectl("delete", "--ignore-not-found", "-f", "-", input=self.rbac)


def flow_schema(name: str, op: OperatorHarness) -> dict[str, Any]:
    return {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
        "kind": "FlowSchema",
        "metadata": {"name": name},
        "spec": {
            "priorityLevelConfiguration": {"name": "workload-low"},
            "matchingPrecedence": 850,
            "distinguisherMethod": {"type": "ByUser"},
            "rules": [
                {
                    "subjects": [
                        {
                            "kind": "ServiceAccount",
                            "serviceAccount": {
                                "name": op.service_account,
                                "namespace": op.namespace,
                            },
                        }
                    ],
                    "resourceRules": [
                        {
                            "verbs": ["*"],
                            "apiGroups": ["*"],
                            "resources": ["*"],
                            "namespaces": ["*"],
                            "clusterScope": True,
                        }
                    ],
                    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                }
            ],
        },
    }


def dispatched(kube: ControlPlane, schema: str) -> int | None:
    """Requests the API server dispatched under ``schema`` so far (None: none yet)."""
    metrics = kube.kubectl("get", "--raw", "/metrics").stdout
    pattern = (
        r"^apiserver_flowcontrol_dispatched_requests_total\{"
        rf'flow_schema="{re.escape(schema)}",priority_level="workload-low"\}} (\S+)$'
    )
    match = re.search(pattern, metrics, re.MULTILINE)
    return int(float(match[1])) if match else None


@contextlib.contextmanager
def counting_requests(kube: ControlPlane, op: OperatorHarness) -> Iterator[Callable[[], int]]:
    """Start the operator and count the API requests it makes (kopf's and the mirror's alike)
    as the API server itself counts them: a FlowSchema matches the operator's ServiceAccount
    and nothing else, and ``apiserver_flowcontrol_dispatched_requests_total`` for it counts
    every request. Yields "requests since the operator was ready"."""
    schema = f"stepwise-test-{op.namespace}"
    kube.apply(json.dumps(flow_schema(schema, op)))
    try:
        op.start()
        # The FlowSchema is in force once it has counted the operator's start-up requests.
        wait_until(lambda: dispatched(kube, schema), timeout=60, what="the FlowSchema to count")
        before = dispatched(kube, schema) or 0
        yield lambda: (dispatched(kube, schema) or 0) - before
    finally:
        kube.kubectl("delete", "flowschema", schema, "--ignore-not-found")


def _exited(proc: Proc) -> bool:
    return not proc.alive


def _harness(
    kube: ControlPlane, procs: Procs, namespace: str, url: str, *, all_namespaces: bool
) -> Iterator[OperatorHarness]:
    harness = OperatorHarness(kube, procs, namespace, url, all_namespaces=all_namespaces)
    harness.install_rbac()
    try:
        yield harness
    finally:
        harness.clean_up()


@pytest.fixture
def operator(
    kube: ControlPlane, wfr_crd: str, procs: Procs, kube_namespace: str, postgres_url: str
) -> Iterator[OperatorHarness]:
    """An operator for this test's namespace (not started: call ``start()``)."""
    yield from _harness(kube, procs, kube_namespace, postgres_url, all_namespaces=False)


@pytest.fixture
def cluster_operator(
    kube: ControlPlane, wfr_crd: str, procs: Procs, kube_namespace: str, postgres_url: str
) -> Iterator[OperatorHarness]:
    """An operator for every namespace (not started: call ``start()``)."""
    yield from _harness(kube, procs, kube_namespace, postgres_url, all_namespaces=True)


@pytest.fixture
def worker(procs: Procs, postgres_url: str) -> Callable[..., Proc]:
    """Start a ``stepwise worker`` process serving ``workflows.py``; returns once it claims."""

    def start(concurrency: int = 20, health_port: int | None = None) -> Proc:
        args = ["--health-port", str(health_port), "--health-host", "127.0.0.1"]
        return procs.worker(
            WORKFLOWS,
            postgres_url,
            lease=15.0,
            concurrency=concurrency,
            args=args if health_port else (),
            ready=True,
        )

    return start
