"""The sdist and the wheel hold every source file of the package, its ``.sql`` files (queries
and migrations, read at run time through importlib.resources) and ``py.typed``, under the
distribution's own name, with the ``stepwise`` command."""

from __future__ import annotations

import tarfile
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

from tests.packaging.conftest import DISTRIBUTION, REPO, Dist


def _package_files(source: Path) -> set[str]:
    """What the package is made of in the tree built: sources, SQL and the typing marker."""
    files = {
        path.relative_to(source).as_posix()
        for path in (source / "stepwise").rglob("*")
        if path.suffix in (".py", ".sql") or path.name == "py.typed"
    }
    assert any(name.endswith(".sql") for name in files)
    return files


def test_the_sdist_holds_the_sources_and_sql_files(dist: Dist) -> None:
    with tarfile.open(dist.sdist) as sdist:
        names = sdist.getnames()
    top = f"{dist.sdist.name.removesuffix('.tar.gz')}/"
    inside = {name.removeprefix(top) for name in names}
    assert _package_files(dist.source) <= inside
    assert {"pyproject.toml", "README.md", "PKG-INFO"} <= inside
    assert not any(name.startswith(("tests/", "harness/", "bench/")) for name in inside)


def test_the_wheel_holds_the_package_under_the_distribution_name(dist: Dist) -> None:
    with zipfile.ZipFile(dist.wheel) as wheel:
        names = set(wheel.namelist())
        info = next(name for name in names if name.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(wheel.read(info).decode())
        entry_points = wheel.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert _package_files(dist.source) <= names
    assert metadata["Name"] == DISTRIBUTION
    assert set(metadata.get_all("Provides-Extra") or []) >= {"postgres", "worker", "operator"}
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert f"stepwise = {scripts['stepwise']}" in entry_points
    assert Path(dist.wheel).name.startswith("stepwise_workflows-")
