"""The dashboard in a real browser (headless Chromium): open the runs list, see a run arrive
without reloading, click into a run, see its parallel steps' bars overlap on the timeline
(their boxes as the browser laid them out), see a failed run's error with the user's file:line
first, and use Cancel and Retry where they are enabled.

The screenshots in docs/images/ come from here:
``DASHBOARD_SCREENSHOTS=docs/images .venv/bin/pytest tests/dashboard/test_browser.py``
(without the variable they go to the test's temporary folder).
"""

from __future__ import annotations

import os
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from harness.workers import Procs, async_wait_until, wait_until
from stepwise import Client, RunStatus
from tests.dashboard.conftest import FLOWS, StartDashboard
from tests.dashboard.flows import PARALLEL
from tests.dashboard.test_server import charge_line

TIMEOUT = 30.0


def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("DASHBOARD_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shown(browser: WebDriver, css: str) -> WebElement:
    """The first element matching ``css`` once the page has one."""
    return wait_until(
        lambda: next(iter(browser.find_elements(By.CSS_SELECTOR, css)), None),
        TIMEOUT,
        f"the page shows {css!r}",
    )


async def test_runs_list_run_timeline_and_error_in_a_browser(
    procs: Procs, sqlite_url: str, dashboard: StartDashboard, browser: WebDriver, tmp_path: Path
) -> None:
    procs.worker(FLOWS, sqlite_url, ready=True)
    async with Client.connect(sqlite_url) as client:
        good = await client.start("dash-parallel", {"user": 42})
        bad = await client.start("dash-fails", {"cents": 250})
        for run in (good, bad):
            await client.wait_finished(run.id, timeout=60)
        site = dashboard(sqlite_url)

        browser.get(site.url)
        shown(browser, f'tr[data-run="{good.id}"]')
        # A run started while the page is open shows up without a reload.
        late = await client.start("dash-parallel", {"user": 7})
        await client.wait_finished(late.id, timeout=60)
        shown(browser, f'tr[data-run="{late.id}"] .status.succeeded')
        browser.save_screenshot(str(shots(tmp_path) / "dashboard-runs.png"))

        shown(browser, f'tr[data-run="{good.id}"] a').click()
        bars = {name: shown(browser, f'.bar[data-step="{name}"]').rect for name in PARALLEL}
        starts = [bar["x"] for bar in bars.values()]
        ends = [bar["x"] + bar["width"] for bar in bars.values()]
        assert max(starts) < min(ends), bars  # the three steps ran at once: the bars overlap
        summarize = shown(browser, '.bar[data-step="summarize"]').rect
        assert summarize["x"] >= min(ends) - 2, (summarize, bars)  # it ran after them
        browser.save_screenshot(str(shots(tmp_path) / "dashboard-run.png"))

        browser.back()
        shown(browser, f'tr[data-run="{bad.id}"] a').click()
        error = shown(browser, "#run-error").text
        first = error.splitlines()[0]
        assert f"flows.py:{charge_line()} in charge: StepFailed" in first, error
        assert "card declined for 250 cents" in first
        browser.save_screenshot(str(shots(tmp_path) / "dashboard-error.png"))


async def test_cancel_and_retry_buttons_in_a_browser(
    procs: Procs, sqlite_url: str, dashboard: StartDashboard, browser: WebDriver
) -> None:
    procs.worker(FLOWS, sqlite_url, ready=True)
    async with Client.connect(sqlite_url) as client:
        run = await client.start("dash-sleeps", {})

        async def sleeping() -> bool:
            return (await client.get(run.id)).status is RunStatus.SLEEPING

        await async_wait_until(sleeping, 60, "the run sleeps")
        site = dashboard(sqlite_url, "--allow-actions")
        browser.get(f"{site.url}runs/{run.id}")
        shown(browser, "#run-status.sleeping")
        shown(browser, 'button[data-action$="/cancel"]').click()
        shown(browser, "#run-status.canceled")  # the page updated itself
        assert (await client.get(run.id)).status is RunStatus.CANCELED

        shown(browser, 'button[data-action$="/retry"]').click()
        shown(browser, "#run-status:not(.canceled)")
        shown(browser, "#run-status.sleeping")  # polling resumed: it sleeps again
        assert (await client.get(run.id)).attempt == 2
