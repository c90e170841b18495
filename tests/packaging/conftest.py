"""The distribution as a user gets it: the wheel and sdist built from this tree by its own
build backend, and fresh virtualenvs holding the wheel with no extra or with one.

Each is made once per test session under a temporary folder; pip fetches the dependencies
through its ordinary cache.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.workers import child_env
from tests.docsnippets import snippets, write

REPO = Path(__file__).resolve().parents[2]
DISTRIBUTION = "stepwise-workflows"


# A virtualenv's python must see only its own packages, never this tree through PYTHONPATH.
ISOLATED = {"PYTHONPATH": ""}
SOURCES = ("stepwise", "docs", "examples", "pyproject.toml", "README.md", ".gitignore")


@dataclass(frozen=True)
class Dist:
    source: Path  # the copy of the tree it was built from
    wheel: Path
    sdist: Path


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        pytest.fail(f"{what} failed:\n{done.stdout}\n{done.stderr}")


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    """``python -m build``: the sdist, then the wheel built from that sdist (so a file the sdist
    leaves out is missing from the wheel too)."""
    root = tmp_path_factory.mktemp("dist")
    source = root / "source"  # a snapshot: the shared tree may change while the test runs
    for name in SOURCES:
        if (REPO / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__")
            shutil.copytree(REPO / name, source / name, ignore=ignore)
        else:
            shutil.copy(REPO / name, source / name)
    out = root / "out"
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(source)], "python -m build")
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return Dist(source, wheel, sdist)


class Installs:
    """Virtualenvs holding the wheel, one per set of extras, made on first use."""

    def __init__(self, dist: Dist, root: Path) -> None:
        self.dist = dist
        self.root = root
        self._bins: dict[str, Path] = {}

    def bin(self, extra: str = "") -> Path:
        """The ``bin`` folder of a virtualenv with ``stepwise-workflows[extra]`` installed."""
        if extra not in self._bins:
            venv = self.root / (extra or "base")
            _run([sys.executable, "-m", "venv", str(venv)], f"python -m venv {venv}")
            requirement = f"{DISTRIBUTION}[{extra}] @ {self.dist.wheel.as_uri()}"
            if not extra:
                requirement = str(self.dist.wheel)
            pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
            _run([*pip, "install", "-q", requirement], f"pip install {requirement}")
            self._bins[extra] = venv / "bin"
        return self._bins[extra]


@pytest.fixture(scope="session")
def installs(dist: Dist, tmp_path_factory: pytest.TempPathFactory) -> Installs:
    return Installs(dist, tmp_path_factory.mktemp("installs"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's project folder: the README's ``greetings.py`` and ``test_greetings.py``."""
    write(readme_project(), tmp_path)
    return tmp_path


def readme_project() -> dict[str, str]:
    """The files of the README's "Use it in your own project"."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Use it in your own project\n", 1)[1].split("\n## ", 1)[0]
    return snippets(section)


def run_in(
    argv: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``argv`` to completion in ``cwd`` (a program of an install), output captured, with
    ``env`` added to the environment."""
    return subprocess.run(
        argv,
        cwd=cwd,
        env=child_env({**ISOLATED, **(env or {})}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
