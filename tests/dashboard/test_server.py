"""``stepwise dashboard`` as a process over a database that a real worker fills, on both
backends: the runs list and its filters, a run's page (input, output, the error with the
user's file:line first, the step timeline), the live fragment the page polls, and actions
that exist only with ``--allow-actions`` and only from the dashboard's own buttons."""

from __future__ import annotations

import errno
import html
import os
import re
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness.workers import Procs, async_wait_until
from stepwise import Client, RunStatus
from tests.dashboard.conftest import FLOWS, StartDashboard

ACTION = {"X-Stepwise-Action": "1"}


def charge_line() -> int:
    lines = FLOWS.read_text().splitlines()
    return lines.index('    raise NonRetryableError(f"card declined for {cents} cents")') + 1


def bars(page: str) -> dict[str, tuple[float, float]]:
    """The timeline's bars: step key → (left, width) in percent."""
    found = re.findall(r'data-step="([^"]+)"\s+style="left: ([\d.]+)%; width: ([\d.]+)%"', page)
    return {key: (float(left), float(width)) for key, left, width in found}


async def test_runs_and_a_run_as_the_dashboard_shows_them(
    procs: Procs, backend_url: str, dashboard: StartDashboard
) -> None:
    procs.worker(FLOWS, backend_url, ready=True)
    async with Client.connect(backend_url) as client:
        good = await client.start("dash-parallel", {"user": 42})
        bad = await client.start("dash-fails", {"cents": 250})
        for run in (good, bad):
            await client.wait_finished(run.id, timeout=60)
        site = dashboard(backend_url)

        listing = site.get("/")
        assert listing.status == 200
        assert good.id[:8] in listing.text
        assert bad.id[:8] in listing.text
        only_failed = site.get("/?status=failed").text
        assert bad.id in only_failed
        assert good.id not in only_failed
        only_parallel = site.get("/?workflow=dash-parallel").text
        assert good.id in only_parallel
        assert bad.id not in only_parallel
        assert good.id in site.get("/?since=1h").text
        # A window that ended before the runs were created: nothing in it.
        assert "No runs match." in site.get("/?since=1s&status=running").text
        refused = site.get("/?since=an+hour")
        assert refused.status == 400
        assert "since" in html.unescape(refused.text)
        assert site.get("/?status=lost").status == 400

        page = site.get(f"/runs/{good.id[:8]}")  # a unique prefix will do
        assert page.status == 200
        assert "&#34;user&#34;: 42" in page.text  # the input, escaped
        shown = bars(page.text)
        assert set(shown) == {"fetch-user", "fetch-subscription", "fetch-settings", "summarize"}
        starts = [shown[key][0] for key in ("fetch-user", "fetch-subscription", "fetch-settings")]
        ends = [
            shown[key][0] + shown[key][1]
            for key in ("fetch-user", "fetch-subscription", "fetch-settings")
        ]
        assert max(starts) < min(ends), shown  # the three ran at once: their bars overlap
        assert shown["summarize"][0] >= min(ends) - 0.5  # it ran after them

        failed = html.unescape(site.get(f"/runs/{bad.id}").text)
        first = failed.split('id="run-error">', 1)[1].splitlines()[0]
        # The error as text, the user's file:line first.
        assert re.search(
            rf"flows\.py:{charge_line()} in charge: StepFailed: .*card declined for 250 cents",
            first,
        ), first

        # Its logs: the body's ctx.log line, then the step's plain logging line.
        logs = failed.split('id="run-logs">', 1)[1]
        assert logs.index("charging 250 cents") < logs.index("the bank declined 250 cents")
        assert "No log lines" in site.get(f"/runs/{good.id}").text

        live = site.get(f"/runs/{good.id}?part=live")
        assert live.status == 200
        assert "<html" not in live.text
        assert "data-final" in live.text
        assert site.get("/runs/00000000-0000-0000-0000-000000000000").status == 404

        # Read-only: no buttons, and the actions are refused.
        assert "data-action" not in failed
        refused = site.request(f"/runs/{bad.id}/retry", method="POST", headers=ACTION)
        assert refused.status == 403
        assert (await client.get(bad.id)).status is RunStatus.FAILED


async def test_cancel_and_retry_need_the_flag_and_the_dashboards_header(
    procs: Procs, backend_url: str, dashboard: StartDashboard
) -> None:
    procs.worker(FLOWS, backend_url, ready=True)
    async with Client.connect(backend_url) as client:
        run = await client.start("dash-sleeps", {})
        await async_wait_until(
            lambda: _status_is(client, run.id, RunStatus.SLEEPING), 60, "the run sleeps"
        )
        site = dashboard(backend_url, "--allow-actions")
        assert f'data-action="/runs/{run.id}/cancel"' in site.get(f"/runs/{run.id}").text

        # A form another site makes the browser post carries no such header.
        forged = site.request(f"/runs/{run.id}/cancel", method="POST")
        assert forged.status == 403
        assert (await client.get(run.id)).status is RunStatus.SLEEPING

        canceled = site.request(f"/runs/{run.id}/cancel", method="POST", headers=ACTION)
        assert canceled.status == 200, canceled.text
        assert (await client.get(run.id)).status is RunStatus.CANCELED
        page = site.get(f"/runs/{run.id}").text
        assert f'data-action="/runs/{run.id}/retry"' in page
        assert "/cancel" not in page

        retried = site.request(f"/runs/{run.id}/retry", method="POST", headers=ACTION)
        assert retried.status == 200, retried.text
        assert (await client.get(run.id)).attempt == 2
        again = site.request(f"/runs/{run.id}/retry", method="POST", headers=ACTION)
        assert again.status == 409  # not failed or canceled any more
        assert "only a failed or canceled run can be retried" in again.text


async def _status_is(client: Client, run_id: str, status: RunStatus) -> bool:
    return (await client.get(run_id)).status is status


def test_the_time_window_is_checked_against_now() -> None:
    from stepwise.dashboard import filters

    now = datetime(2026, 1, 2, tzinfo=UTC)
    chosen = filters.read({"since": "90m", "status": "failed", "workflow": " w "})
    arguments = chosen.list_arguments(now)
    assert arguments["since"] == now - timedelta(minutes=90)
    assert arguments["status"] is RunStatus.FAILED
    assert arguments["workflow"] == "w"
    assert chosen.query(cursor="abc") == "workflow=w&status=failed&since=90m&cursor=abc"


def test_a_busy_port_or_a_missing_database_is_one_line(procs: Procs, tmp_path: Path) -> None:
    missing = procs.cli("dashboard", "--database-url", f"sqlite:///{tmp_path / 'none.db'}")
    assert missing.returncode == 2
    assert missing.stderr.count("\n") == 1
    assert "none.db" in missing.stderr
    assert not (tmp_path / "none.db").exists()  # the dashboard never creates a database

    url = f"sqlite:///{tmp_path / 'stepwise.db'}"
    started = procs.cli("start", "dash-fails", "--input", '{"cents": 1}', "--database-url", url)
    assert started.returncode == 0, started.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = procs.cli("dashboard", "--port", str(port), "--database-url", url)
    assert refused.returncode == 2
    assert refused.stderr == (
        f"stepwise: error: cannot serve the dashboard on 127.0.0.1 port {port}: "
        f"{os.strerror(errno.EADDRINUSE)}\n"
    )


async def test_a_runs_signals_and_children(
    procs: Procs, backend_url: str, dashboard: StartDashboard
) -> None:
    procs.worker(FLOWS, backend_url, ready=True)
    async with Client.connect(backend_url) as client:
        run = await client.start("dash-parent", {})
        await client.signal(run.id, "approve", {"by": "ada", "user": 7})
        await client.wait_finished(run.id, timeout=60)
        [child] = await client.list(parent_id=run.id)
        site = dashboard(backend_url)

        page = html.unescape(site.get(f"/runs/{run.id}").text)
        signals = page.split("<h2>Signals</h2>", 1)[1]
        assert "<td>approve</td>" in signals
        assert '"by": "ada"' in signals
        assert "<code>approve</code> at" in signals  # received by the wait step of that name
        children = page.split("<h2>Child runs</h2>", 1)[1]
        assert f'href="/runs/{child.id}"' in children
        assert "dash-parallel" in children
        # The step that started it links to it too.
        assert f'<a class="child" href="/runs/{child.id}">child run</a>' in page

        child_page = site.get(f"/runs/{child.id}").text
        assert f'<a href="/runs/{run.id}">{run.id}</a>' in child_page
        assert f'<a href="/runs/{run.id}">{run.id[:8]}</a>' in site.get("/").text  # Parent column
