"""``pip install stepwise-workflows`` with no extra: the wheel runs workflows on SQLite, with
``stepwise run``, with a worker process and with ``stepwise.testing``, and pulls in none of
the extras' packages.

aiohttp and prometheus_client come with the ``worker`` extra: the worker imports them only
when a health port is set, and then their absence is one line that names the extra; the
Postgres backend names the ``postgres`` extra the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.workers import Procs
from stepwise import Client
from tests.packaging.conftest import ISOLATED, Installs, readme_project, run_in

ADA = '{"name": "ada"}'
EXTRAS_ONLY = (
    "aiohttp", "prometheus_client", "kopf", "kubernetes_asyncio", "asyncpg", "opentelemetry",
)  # fmt: skip


@pytest.fixture(scope="module")
def base(installs: Installs) -> Path:
    return installs.bin()


def test_the_base_install_has_none_of_the_extras(base: Path) -> None:
    for module in EXTRAS_ONLY:
        found = run_in([str(base / "python"), "-c", f"import {module}"], base)
        assert found.returncode == 1, f"{module} is installed without an extra"
        assert "ModuleNotFoundError" in found.stderr


def test_the_readme_project_runs_and_its_test_passes(base: Path, project: Path) -> None:
    assert set(readme_project()) == {"greetings.py", "test_greetings.py"}
    done = run_in([str(base / "stepwise"), "run", "greetings.py", "greet", "--input", ADA], project)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == "hello ada"
    assert (project / "stepwise.db").exists()
    tools = run_in([str(base / "pip"), "install", "-q", "pytest", "pytest-asyncio"], project)
    assert tools.returncode == 0, tools.stderr
    tested = run_in([str(base / "pytest"), "-q", "-p", "no:cacheprovider"], project)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "1 passed" in tested.stdout


def test_the_install_imports_its_own_copy(base: Path, project: Path) -> None:
    done = run_in(
        [str(base / "python"), "-c", "import stepwise; print(stepwise.__file__)"], project
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(base.parent), "imported this tree"


async def test_a_worker_runs_without_a_health_port(base: Path, procs: Procs, project: Path) -> None:
    database = f"sqlite:///{project / 'runs.db'}"
    stepwise = str(base / "stepwise")
    started = run_in(
        [stepwise, "start", "greet", "--input", ADA, "--database-url",
         database],
        project,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    worker = procs.spawn(
        [stepwise, "worker", "--app", str(project / "greetings.py"), "--database-url", database],
        name="plain-worker",
        env=ISOLATED,
    )
    async with Client.connect(database) as client:
        assert await client.wait(started.stdout.strip(), timeout=60) == "hello ada"
    assert worker.alive, worker.tail()
    worker.terminate()
    assert worker.wait(30) == 0, worker.tail()


def test_a_health_port_without_the_extra_is_one_line_naming_it(base: Path, project: Path) -> None:
    refused = run_in(
        [str(base / "stepwise"), "worker", "--app", "greetings.py", "--database-url",
         f"sqlite:///{project / 'runs.db'}", "--health-port", "9"],
        project,
    )  # fmt: skip
    assert refused.returncode == 2
    assert (
        "--health-port needs prometheus_client: pip install 'stepwise-workflows[worker]'"
        in refused.stderr
    )
    assert "Traceback" not in refused.stderr


def test_tracing_without_the_extra_is_one_line_naming_it(base: Path, project: Path) -> None:
    refused = run_in(
        [str(base / "stepwise"), "worker", "--app", "greetings.py", "--database-url",
         f"sqlite:///{project / 'runs.db'}"],
        project,
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},
    )  # fmt: skip
    assert refused.returncode == 2
    assert "OpenTelemetry's SDK is not installed: pip install 'stepwise-workflows[otel]'" in (
        refused.stderr
    )
    assert "Traceback" not in refused.stderr


def test_postgres_without_the_extra_is_one_line_naming_it(base: Path, project: Path) -> None:
    refused = run_in(
        [str(base / "stepwise"), "runs", "list", "--database-url", "postgresql://u@127.0.0.1/db"],
        project,
    )
    assert refused.returncode == 2, refused.stderr
    assert "pip install 'stepwise-workflows[postgres]'" in refused.stderr
    assert "Traceback" not in refused.stderr
