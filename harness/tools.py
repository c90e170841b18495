"""The pinned Kubernetes binaries: their versions (``tools/versions.env``, shared with
``scripts/k8s-tools.sh``), where the build puts them, and running one (kubectl, helm, …).

The binaries are compiled from Go modules by ``bash scripts/k8s-tools.sh`` into
``${STEPWISE_CACHE:-~/.cache/stepwise}/k8s-<KUBE_VERSION>/bin``.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness.errors import ControlPlaneError, ToolError

REPO_ROOT = Path(__file__).resolve().parents[1]
VERSIONS_FILE = REPO_ROOT / "tools" / "versions.env"
BUILD_HINT = (
    "run `bash scripts/k8s-tools.sh` to build them (the first build takes 12-20 min on 2 cores)"
)


def read_versions(path: Path = VERSIONS_FILE) -> dict[str, str]:
    """``tools/versions.env`` as a dict; the build script reads the same file."""
    versions: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Z_]+)=([^\s#]+)", line)
        if match:
            versions[match[1]] = match[2]
    return versions


def cache_dir() -> Path:
    return Path(os.environ.get("STEPWISE_CACHE") or Path.home() / ".cache" / "stepwise")


def default_bin_dir() -> Path:
    """Where ``scripts/k8s-tools.sh`` puts the binaries of the pinned Kubernetes version."""
    return cache_dir() / f"k8s-{read_versions()['KUBE_VERSION']}" / "bin"


def find_binaries(bin_dir: Path, names: Sequence[str]) -> dict[str, Path]:
    missing = [name for name in names if not os.access(bin_dir / name, os.X_OK)]
    if missing:
        raise ControlPlaneError(
            f"Kubernetes test binaries missing from {bin_dir}: {', '.join(missing)}; {BUILD_HINT}"
        )
    return {name: bin_dir / name for name in names}


def run_tool(
    bin_dir: Path,
    tool: str,
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    input: str | None = None,  # noqa: A002 - subprocess's name
    check: bool = True,
    timeout: float = 120.0,
) -> subprocess.CompletedProcess[str]:
    """Run the built ``tool`` from ``bin_dir``; ToolError (with stderr) on a non-zero exit
    unless ``check=False``."""
    executable = bin_dir / tool
    if not os.access(executable, os.X_OK):
        raise ControlPlaneError(f"{executable} is missing; {BUILD_HINT}")
    result = subprocess.run(
        [str(executable), *args],
        input=input,
        capture_output=True,
        text=True,
        env=dict(env),
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise ToolError(result.returncode, result.args, result.stdout, result.stderr)
    return result
