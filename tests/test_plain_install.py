"""A plain ``pip install stepwise`` (no extras) runs a worker on SQLite.

aiohttp and prometheus_client come with the ``worker`` extra: the worker imports them only
when a health port is set, and then their absence is one line that names the extra. The
install is real: a fresh virtualenv, ``pip install`` of this source tree (built by its own
build backend, so the ``.sql`` files must be packaged), once per test session.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.workers import Procs
from stepwise import Client

REPO = Path(__file__).resolve().parent.parent
EXTRAS_ONLY = ("aiohttp", "prometheus_client", "kopf", "kubernetes_asyncio", "asyncpg")
FLOWS = """
from stepwise import workflow


@workflow("plain-greet")
async def greet(ctx):
    return await ctx.step.run("greet", lambda: f"hello {ctx.input['name']}")
"""


@pytest.fixture(scope="session")
def plain_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` directory of a virtualenv holding ``stepwise`` and its base dependencies."""
    root = tmp_path_factory.mktemp("plain-install")
    source = root / "source"
    shutil.copytree(
        REPO / "stepwise", source / "stepwise", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    installed = subprocess.run(
        [*pip, "install", str(source)], capture_output=True, text=True, timeout=900, check=False
    )
    if installed.returncode != 0:
        pytest.fail(f"pip install {source} failed:\n{installed.stdout}\n{installed.stderr}")
    return venv / "bin"


def test_the_base_install_has_none_of_the_extras(plain_install: Path) -> None:
    for module in EXTRAS_ONLY:
        found = subprocess.run(
            [str(plain_install / "python"), "-c", f"import {module}"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert found.returncode == 1, f"{module} is installed without an extra"
        assert "ModuleNotFoundError" in found.stderr


async def test_a_worker_runs_without_a_health_port(
    plain_install: Path, procs: Procs, tmp_path: Path
) -> None:
    app = tmp_path / "plain_flows.py"
    app.write_text(FLOWS)
    database = f"sqlite:///{tmp_path / 'runs.db'}"
    stepwise = str(plain_install / "stepwise")
    worker = procs.spawn(
        [stepwise, "worker", "--app", str(app), "--database-url", database, "--health-port", "0"],
        name="plain-worker",
    )
    started = subprocess.run(
        [
            stepwise,
            "start",
            "plain-greet",
            "--input",
            '{"name": "plain"}',
            "--database-url",
            database,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    async with Client.connect(database) as client:
        assert await client.wait(started.stdout.strip(), timeout=60) == "hello plain"
    assert worker.alive, worker.tail()
    worker.terminate()
    assert worker.wait(30) == 0, worker.tail()


def test_a_health_port_without_the_extra_is_one_line_naming_it(
    plain_install: Path, tmp_path: Path
) -> None:
    app = tmp_path / "plain_flows.py"
    app.write_text(FLOWS)
    refused = subprocess.run(
        [
            str(plain_install / "stepwise"),
            "worker",
            "--app",
            str(app),
            "--database-url",
            f"sqlite:///{tmp_path / 'runs.db'}",
            "--health-port",
            "9",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert "--health-port needs prometheus_client: pip install 'stepwise[worker]'" in refused.stderr
    assert "Traceback" not in refused.stderr
