"""The images' contract with the chart, checked as text (the e2e tests build and run them on
the test node; these checks need no root): the entrypoint the chart's args assume, the numeric
non-root user that ``runAsNonRoot`` needs and ``podSecurityContext`` names, the health ports,
a build context that holds what the Dockerfile copies, and an examples image whose
STEPWISE_APP lists every example module (which all load side by side in one worker).
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
VALUES = yaml.safe_load((REPO / "charts" / "stepwise" / "values.yaml").read_text())


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def test_image_contract_with_the_chart() -> None:
    steps = instructions(REPO / "Dockerfile")
    stages = [args for word, args in steps if word == "FROM"]
    assert len(stages) == 2, "multi-stage: build, then runtime"
    assert [stage.split()[0] for stage in stages] == ["${BASE_IMAGE}"] * 2
    # Docker users get the official Python image; scripts/images.sh passes a local Debian one.
    assert ("ARG", "PYTHON_VERSION=3.11") in steps
    assert ("ARG", "BASE_IMAGE=python:${PYTHON_VERSION}-slim") in steps
    # The offline build's pip settings are build-args of the build stage only.
    runtime = steps[max(i for i, (word, _) in enumerate(steps) if word == "FROM") :]
    assert not [args for word, args in runtime if word in ("ARG", "ENV") and "PIP_" in args]
    runs = " ".join(args for word, args in steps if word == "RUN")
    assert "pip install '.[all]'" in runs
    assert steps[-2:] == [("ENTRYPOINT", '["stepwise"]'), ("CMD", '["--help"]')]
    (user,) = [args for word, args in steps if word == "USER"]
    security = VALUES["podSecurityContext"]
    assert user == f"{security['runAsUser']}:{security['runAsGroup']}"
    (exposed,) = [args.split() for word, args in steps if word == "EXPOSE"]
    ports = {VALUES["operator"]["healthPort"], VALUES["worker"]["healthPort"]}
    assert {int(port) for port in exposed} == ports


def test_build_context_holds_what_the_dockerfile_copies() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def included(path: str) -> bool:
        keep = True
        for pattern in patterns:
            negated = pattern.startswith("!")
            bare = pattern.removeprefix("!").rstrip("/")
            if fnmatch.fnmatch(path, bare) or path.startswith(bare + "/"):
                keep = negated
        return keep

    copied = [
        source
        for word, args in instructions(REPO / "Dockerfile")
        if word == "COPY" and not args.startswith("--from")
        for source in args.split()[:-1]
    ]
    assert copied
    for source in copied:
        assert (REPO / source).exists(), source
        assert included(source.rstrip("/")), f"{source} is excluded by .dockerignore"
    assert not included(".venv")
    assert not included("tests")


def test_examples_image_serves_every_example() -> None:
    steps = instructions(REPO / "examples" / "Dockerfile")
    assert steps[0] == ("ARG", "STEPWISE_IMAGE=stepwise:0.2.0")
    assert steps[1] == ("FROM", "${STEPWISE_IMAGE}")
    assert ("COPY", "*.py /app/workflows/") in steps
    (app,) = [args for word, args in steps if word == "ENV" and args.startswith("STEPWISE_APP=")]
    listed = app.removeprefix("STEPWISE_APP=").split(",")
    examples = sorted((REPO / "examples").glob("*.py"))
    assert sorted(listed) == sorted(f"/app/workflows/{path.name}" for path in examples)
    # All of them in one worker: no two examples define the same workflow name.
    loaded = subprocess.run(
        [
            sys.executable, "-c",
            "import sys\nfrom stepwise import default_registry, load_app\n"
            "for path in sys.argv[1:]: load_app(path)\nprint(len(default_registry.names()))",
            *map(str, examples),
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert int(loaded.stdout) >= len(examples)
