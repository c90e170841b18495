"""``stepwise-workflows[dashboard]`` from the wheel: the dashboard serves its pages, so its
templates and static files are in the wheel; without the extra, ``stepwise dashboard`` is one
line that names it."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

from harness.workers import Procs, wait_until
from tests.packaging.conftest import ISOLATED, Installs, run_in


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        body: bytes = response.read()
    return body.decode()


def test_the_extra_serves_the_dashboard(installs: Installs, project: Path, procs: Procs) -> None:
    stepwise = str(installs.bin("dashboard") / "stepwise")
    url = f"sqlite:///{project / 'runs.db'}"
    ran = run_in(
        [stepwise, "run", "greetings.py", "greet", "--input", '{"name": "ada"}',
         "--database-url", url],
        project,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    dashboard = procs.spawn(
        [stepwise, "dashboard", "--port", "0", "--database-url", url],
        name="dashboard-extra",
        env=ISOLATED,
        cwd=project,
    )
    found = wait_until(
        lambda: re.search(r"serving (http://127\.0\.0\.1:\d+/)", dashboard.log()),
        60,
        lambda: f"the dashboard serves\n{dashboard.tail()}",
    )
    site = found.group(1)
    assert "greet" in _get(site)
    assert "data-poll" in _get(site)  # the template, rendered
    assert "X-Stepwise-Action" in _get(site + "static/dashboard.js")
    dashboard.terminate()
    assert dashboard.wait(30) == 0, dashboard.tail()


def test_the_dashboard_without_the_extra_is_one_line_naming_it(
    installs: Installs, project: Path
) -> None:
    refused = run_in([str(installs.bin() / "stepwise"), "dashboard"], project)
    assert refused.returncode == 2
    needs = "the dashboard needs aiohttp: pip install 'stepwise-workflows[dashboard]'"
    assert refused.stderr == f"stepwise: error: {needs}\n"
