"""Each extra of the wheel delivers what it promises, in a virtualenv of its own:
``postgres`` runs workflows on PostgreSQL, ``worker`` serves health and metrics, ``operator``
loads the kopf handlers and writes the CRD."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from harness.processes import free_port
from harness.workers import Procs, wait_until
from tests.packaging.conftest import ISOLATED, Installs, run_in

PROMISED = {
    "postgres": ("asyncpg", "stepwise.backends.postgres.backend"),
    "worker": ("aiohttp", "prometheus_client", "stepwise.worker.metrics"),
    "operator": ("kopf", "kubernetes_asyncio", "yaml", "asyncpg", "stepwise.operator.handlers"),
    "otel": ("opentelemetry.sdk.trace", "opentelemetry.exporter.otlp.proto.http.trace_exporter"),
}


@pytest.mark.parametrize("extra", sorted(PROMISED))
def test_the_extra_brings_its_modules(extra: str, installs: Installs, tmp_path: Path) -> None:
    python = installs.bin(extra) / "python"
    imported = run_in([str(python), "-c", f"import {', '.join(PROMISED[extra])}"], tmp_path)
    assert imported.returncode == 0, imported.stderr


def test_postgres_runs_a_workflow(installs: Installs, project: Path, postgres_url: str) -> None:
    stepwise = installs.bin("postgres") / "stepwise"
    argv = [str(stepwise), "run", "greetings.py", "greet", "--input", '{"name": "ada"}']
    done = run_in([*argv, "--database-url", postgres_url], project)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == "hello ada"
    assert not (project / "stepwise.db").exists()


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
    return body.decode()


def test_worker_serves_health_and_metrics(installs: Installs, project: Path, procs: Procs) -> None:
    port = free_port()
    worker = procs.spawn(
        [str(installs.bin("worker") / "stepwise"), "worker", "--app", "greetings.py",
         "--database-url", f"sqlite:///{project / 'runs.db'}", "--health-port", str(port),
         "--health-host", "127.0.0.1"],
        name="worker-extra",
        env=ISOLATED,
        cwd=project,
    )  # fmt: skip

    def serving() -> bool:
        assert worker.alive, worker.tail()
        try:
            return _get(f"http://127.0.0.1:{port}/healthz").strip() == "ok"
        except OSError:
            return False

    wait_until(serving, 60, lambda: f"/healthz of the worker\n{worker.tail()}")
    assert "stepwise_runs_started" in _get(f"http://127.0.0.1:{port}/metrics")
    worker.terminate()
    assert worker.wait(30) == 0, worker.tail()


def test_operator_writes_the_crd(installs: Installs, tmp_path: Path) -> None:
    stepwise = installs.bin("operator") / "stepwise"
    done = run_in([str(stepwise), "crds", "--output", "crd.yaml"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "kind: CustomResourceDefinition" in (tmp_path / "crd.yaml").read_text()
