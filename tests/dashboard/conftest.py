"""A real ``stepwise dashboard`` process for each test, and the runs that feed it: a real
worker process serving ``flows.py``."""

from __future__ import annotations

import re
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.remote.webdriver import WebDriver

from harness.workers import Proc, Procs, wait_until

FLOWS = Path(__file__).with_name("flows.py")
SERVING = re.compile(r"stepwise dashboard serving (http://127\.0\.0\.1:\d+/)")


@dataclass
class Page:
    status: int
    text: str


@dataclass
class Dashboard:
    url: str
    proc: Proc

    def get(self, path: str) -> Page:
        return self.request(path)

    def request(
        self, path: str, *, method: str = "GET", headers: dict[str, str] | None = None
    ) -> Page:
        request = urllib.request.Request(
            self.url + path.lstrip("/"), method=method, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Page(response.status, response.read().decode())
        except urllib.error.HTTPError as exc:
            return Page(exc.code, exc.read().decode())


StartDashboard = Callable[..., Dashboard]


@pytest.fixture
def dashboard(procs: Procs) -> StartDashboard:
    """``dashboard(database_url, *args)``: a ``stepwise dashboard`` on a free port of
    127.0.0.1, once it serves."""

    def start(database_url: str, *args: str) -> Dashboard:
        argv = [
            sys.executable, "-m", "stepwise", "dashboard", "--port", "0",
            "--database-url", database_url, *args,
        ]  # fmt: skip
        proc = procs.spawn(argv, name="dashboard")
        found = wait_until(
            lambda: SERVING.search(proc.log()) or _exited(proc),
            60,
            lambda: f"the dashboard serves\n{proc.tail()}",
        )
        return Dashboard(found.group(1), proc)

    return start


def _exited(proc: Proc) -> None:
    if not proc.alive:
        pytest.fail(f"the dashboard exited\n{proc.tail()}")


BROWSER_TOOLS = "scripts/browser-tools.sh"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    """Headless Chromium from Debian, driven through its chromedriver. Missing, it fails the
    test (never skips) and says how to install it."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.fail(
            f"the browser tests need Debian's chromium and chromium-driver: "
            f"run 'sudo bash {BROWSER_TOOLS}' (make test does)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespaces for the sandbox
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--user-data-dir={tmp_path / 'chromium'}",
        "--window-size=1280,900",
    ):
        options.add_argument(argument)
    service = ChromeService(executable_path=driver, log_output=str(tmp_path / "chromedriver.log"))
    session = webdriver.Chrome(options=options, service=service)
    try:
        yield session
    finally:
        session.quit()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file for this test (the browser tests need one backend, not both)."""
    return f"sqlite:///{tmp_path / 'stepwise.db'}"
