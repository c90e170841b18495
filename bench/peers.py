"""The peer engines, installed by the benchmark itself into a cache outside the repository.

An npm project holds the Node engine (pinned), its Postgres driver and ``tsx``; a separate
virtualenv holds the Python peer (pinned). Both are rebuilt only when their pinned versions
change (a stamp file records what was installed), and never live in the repository.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CACHE = Path.home() / ".cache" / "stepwise" / "bench"
NODE_PACKAGES = {"openworkflow": "0.10.1", "postgres": "^3.4.9", "tsx": "^4.23.15"}
PYTHON_PACKAGES = ["dbos==3.4.0"]
HERE = Path(__file__).resolve().parent
TS_SOURCES = HERE / "node"


@dataclass(frozen=True, slots=True)
class Peers:
    node_project: Path
    """npm project with node_modules; the TypeScript benchmark files are copied in."""
    python: Path
    """Interpreter of the virtualenv that has the Python peer."""


def _run(argv: list[str], cwd: Path, what: str) -> None:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed ({result.returncode}):\n{result.stdout}{result.stderr}")


def _stamped(directory: Path, wanted: str) -> bool:
    stamp = directory / ".stepwise-installed"
    return stamp.is_file() and stamp.read_text() == wanted


def _stamp(directory: Path, wanted: str) -> None:
    (directory / ".stepwise-installed").write_text(wanted)


def ensure_node_project(cache: Path) -> Path:
    project = cache / "openworkflow"
    manifest = {
        "name": "stepwise-bench-peers",
        "private": True,
        "type": "module",
        "dependencies": NODE_PACKAGES,
    }
    wanted = json.dumps(manifest, sort_keys=True)
    if not _stamped(project, wanted):
        if shutil.which("npm") is None:
            raise RuntimeError("npm is not installed: apt-get install -y nodejs npm")
        project.mkdir(parents=True, exist_ok=True)
        (project / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
        print(f"==> installing {', '.join(NODE_PACKAGES)} into {project}", flush=True)
        _run(["npm", "install", "--no-audit", "--no-fund"], project, "npm install")
        _stamp(project, wanted)
    for source in TS_SOURCES.glob("*.ts"):
        shutil.copyfile(source, project / source.name)
    return project


def ensure_python_venv(cache: Path) -> Path:
    venv = cache / "dbos-venv"
    wanted = json.dumps(PYTHON_PACKAGES)
    python = venv / "bin" / "python"
    if not _stamped(venv, wanted):
        print(f"==> installing {', '.join(PYTHON_PACKAGES)} into {venv}", flush=True)
        if not python.exists():
            _run([sys.executable, "-m", "venv", str(venv)], cache, "python -m venv")
        _run([str(python), "-m", "pip", "install", "-q", *PYTHON_PACKAGES], cache, "pip install")
        _stamp(venv, wanted)
    return python


def ensure(cache: Path = DEFAULT_CACHE) -> Peers:
    cache.mkdir(parents=True, exist_ok=True)
    return Peers(node_project=ensure_node_project(cache), python=ensure_python_venv(cache))
