"""Loading apps (``--app``): a module from the project folder, files of the same name in two
folders, and ``sys.path`` left as it was found."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.workers import child_env
from stepwise.loader import load_app
from tests.cli.conftest import Stepwise


def write(path: Path, code: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(code))
    return path


FLOW = """
    from stepwise import workflow

    @workflow("{name}")
    async def flow(ctx):
        return await ctx.step.run("where", lambda: "{name}")
"""


def test_a_module_app_loads_from_the_project_folder(stepwise: Stepwise, tmp_path: Path) -> None:
    """``--app myapp.flows``, the README's own example, as ``python -m`` would find it."""
    project = tmp_path / "project"
    write(project / "myapp" / "__init__.py", "")
    write(project / "myapp" / "flows.py", FLOW.format(name="project-flow"))
    ran = stepwise("run", "myapp.flows", "project-flow", cwd=project)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == "project-flow"


def test_files_of_the_same_name_in_two_folders_are_both_loaded(tmp_path: Path) -> None:
    first = write(tmp_path / "a" / "flows.py", FLOW.format(name="twin-a"))
    second = write(tmp_path / "b" / "flows.py", FLOW.format(name="twin-b"))
    code = (
        "import sys\nfrom stepwise import default_registry, load_app\n"
        "for path in sys.argv[1:]: load_app(path)\nprint(' '.join(default_registry.names()))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code, str(first), str(second)],
        capture_output=True, text=True, env=child_env(), check=False, timeout=60,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == ["twin-a", "twin-b"]


def test_loading_leaves_sys_path_as_it_was_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file app still imports its siblings, and a module app its package, while loading."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "files" / "sibling_helper_x1.py", "VALUE = 1\n")
    app = write(tmp_path / "files" / "uses_sibling.py", "import sibling_helper_x1\n")
    write(tmp_path / "pkg_x1" / "__init__.py", "")
    write(tmp_path / "pkg_x1" / "mod.py", "")
    before = list(sys.path)
    load_app(str(app))
    load_app("pkg_x1.mod")
    assert sys.path == before
    assert "sibling_helper_x1" in sys.modules
    assert "pkg_x1.mod" in sys.modules
